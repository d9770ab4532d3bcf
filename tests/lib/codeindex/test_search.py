from __future__ import annotations

import itertools
from textwrap import dedent

import pytest

from qweb.lib.codeindex.search import (
    SearchIndex,
    SymbolIndex,
    build,
    chunk_documents,
    file_document,
)
from qweb.lib.codeindex.symbols import extract

CORPUS = {
    "accounts/auth.py": """
        from django.conf import settings


        def get_user_model():
            \"\"\"Return the User model that is active in this project.\"\"\"
            return settings.AUTH_USER_MODEL


        class PasswordHasher:
            def encode(self, password, salt):
                return pbkdf2(password, salt)
        """,
    "accounts/views.py": """
        from accounts.auth import get_user_model


        def profile(request):
            user_model = get_user_model()
            return render(request, "profile.html", {"model": user_model})
        """,
    "billing/invoices.py": """
        class InvoiceRenderer:
            def render_pdf(self, invoice):
                return make_pdf(invoice.lines)


        def send_invoice_email(invoice, recipient):
            return mail(recipient, render_pdf(invoice))
        """,
    "web/static/app.js": """
        export function fetchInvoiceList(customerId) {
          return fetch(`/api/invoices?customer=${customerId}`);
        }
        """,
}


def _index() -> SearchIndex:
    documents = []
    symbols = []
    for path, source in CORPUS.items():
        text = dedent(source).lstrip()
        language = "javascript" if path.endswith(".js") else "python"
        symbols.append(extract(path, language, text.encode()))
        documents.append(file_document(path, text))
    return build(documents, SymbolIndex.from_files(symbols))


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return _index()


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("get_user_model", "accounts/auth.py"),
        ("where is the password hasher", "accounts/auth.py"),
        ("InvoiceRenderer render pdf", "billing/invoices.py"),
        ("fetchInvoiceList", "web/static/app.js"),
        ("fetch invoice list", "web/static/app.js"),
        ("send invoice email", "billing/invoices.py"),
    ],
)
def test_it_finds_the_right_file_for_identifier_queries(index, query, path):
    assert index.search(query, k=1)[0][0] == path


def test_the_definition_outranks_a_caller_for_a_named_identifier(index):
    results = [doc_id for doc_id, _ in index.search("get_user_model", k=2)]
    assert results == ["accounts/auth.py", "accounts/views.py"]


def test_pure_bm25_ranking_is_available_without_the_definition_boost(index):
    scores = dict(index.search("get_user_model", k=4, definition_boost=0))
    boosted = dict(index.search("get_user_model", k=4))
    assert boosted["accounts/auth.py"] > scores["accounts/auth.py"]
    assert boosted["accounts/views.py"] == scores["accounts/views.py"]


def test_words_nobody_wrote_find_nothing(index):
    assert index.search("kubernetes helm chart") == []
    assert index.search("") == []


def test_k_larger_than_the_corpus_returns_every_match(index):
    assert len(index.search("invoice", k=50)) == 2


def test_it_round_trips_through_a_directory(index, tmp_path):
    index.save(tmp_path / "index")
    loaded = SearchIndex.load(tmp_path / "index")
    for query in ("get_user_model", "render pdf", "fetchInvoiceList"):
        assert loaded.search(query, k=3) == index.search(query, k=3)
    assert (
        loaded.document("billing/invoices.py").end_line
        == index.document("billing/invoices.py").end_line
    )
    assert loaded.search_symbols("InvoiceRenderer") == index.search_symbols("InvoiceRenderer")


def test_loading_another_format_version_is_refused(index, tmp_path):
    index.save(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": 0}')
    with pytest.raises(ValueError, match="format"):
        SearchIndex.load(tmp_path)


def test_an_empty_corpus_builds_and_finds_nothing(tmp_path):
    empty = build([])
    assert empty.search("anything") == []
    empty.save(tmp_path)
    assert SearchIndex.load(tmp_path).search("anything") == []


def test_symbol_search_matches_exactly_then_across_naming_styles(index):
    (exact, score), *_ = index.search_symbols("get_user_model")
    assert (exact.name, exact.path, score) == ("get_user_model", "accounts/auth.py", 1.0)
    (styled, _), *_ = index.search_symbols("getUserModel")
    assert styled.name == "get_user_model"


def test_symbol_search_matches_prefixes_word_prefixes_and_typos(index):
    assert index.search_symbols("InvoiceRend")[0][0].name == "InvoiceRenderer"
    assert index.search_symbols("send email")[0][0].name == "send_invoice_email"
    assert index.search_symbols("PasswordHahser")[0][0].name == "PasswordHasher"


def test_symbol_search_narrows_by_parent_when_qualified(index):
    (entry, score), *_ = index.search_symbols("PasswordHasher.encode")
    assert (entry.name, entry.parent, score) == ("encode", "PasswordHasher", 1.0)


def test_chunks_are_40_to_80_lines_and_start_at_definitions():
    functions = "".join(
        f"@decorator\ndef function_{number}(value):\n" + "    value += 1\n" * 13 + "\n"
        for number in range(20)
    )
    symbols = extract("big.py", "python", functions.encode())
    chunks = chunk_documents("big.py", functions, symbols.definitions)
    decorator_lines = {definition.start_line - 1 for definition in symbols.definitions}
    assert chunks[0].start_line == 1
    assert chunks[-1].end_line == functions.count("\n")
    for chunk, following in itertools.pairwise(chunks):
        assert 40 <= chunk.end_line - chunk.start_line + 1 <= 80
        assert following.start_line == chunk.end_line + 1
        # The decorator line above each definition opens the next chunk.
        assert following.start_line in decorator_lines
    assert "".join(chunk.text for chunk in chunks) == functions


def test_a_short_file_is_one_chunk():
    chunks = chunk_documents("small.py", "x = 1\ny = 2\n")
    assert [(chunk.id, chunk.start_line, chunk.end_line) for chunk in chunks] == [
        ("small.py#L1-2", 1, 2)
    ]


def test_search_paths_folds_chunks_into_their_files():
    text = "".join(f"def handler_{n}():\n    return {n}\n\n" for n in range(60))
    symbols = extract("handlers.py", "python", text.encode())
    index = build(chunk_documents("handlers.py", text, symbols.definitions))
    assert index.search_paths("handler_42") == [("handlers.py", index.search("handler_42")[0][1])]
