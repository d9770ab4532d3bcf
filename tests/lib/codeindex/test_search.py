from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from textwrap import dedent

import bm25s
import numpy as np
import pytest

from qweb.lib.codeindex.search import (
    FileMaterial,
    SearchIndex,
    SymbolIndex,
    build,
    build_files,
    chunk_documents,
    file_document,
    path_tokens,
)
from qweb.lib.codeindex.symbols import extract
from qweb.lib.codeindex.tokens import tokenize

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


# Building from file materials, and updating an index from the previous commit's.

COMMIT_ONE = {
    "shop/models.py": "class Order:\n    def total_price(self):\n        return price_of(self)\n",
    "shop/views.py": "def order_detail(request):\n    return Order.objects.get(pk=1)\n",
    "shop/legacy.py": "def legacy_discount_only_here():\n    return 0\n",
    "web/app.js": "export function renderCart(items) {\n  return items.length;\n}\n",
    "docs/notes.txt": "Orders ship within two days; refunds take a week.\n",
}
# Changed, removed, added and renamed files against COMMIT_ONE; the rest carried over.
COMMIT_TWO = {
    "shop/models.py": (
        "class Order:\n    def total_price(self):\n        return price_of(self)\n\n"
        "    def shipping_estimate(self):\n        return 2\n"
    ),
    "shop/views.py": COMMIT_ONE["shop/views.py"],
    "web/cart.js": COMMIT_ONE["web/app.js"],
    "docs/notes.txt": COMMIT_ONE["docs/notes.txt"],
    "shop/coupons.py": "def apply_coupon(order, code):\n    return order\n",
}
QUERIES = [
    "total price",
    "order detail",
    "renderCart items",
    "shipping estimate",
    "apply coupon",
    "legacy discount",
    "refunds week",
    "cart",
]


def _key(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _materials(files: dict[str, str]) -> dict[str, FileMaterial]:
    return {
        _key(text): FileMaterial.from_text(
            text, extract(path, _language(path), text.encode()).definitions
        )
        for path, text in files.items()
    }


def _language(path: str) -> str:
    return {"py": "python", "js": "javascript"}.get(path.rpartition(".")[2], "text")


def _files(files: dict[str, str]) -> list[tuple[str, str]]:
    return sorted((path, _key(text)) for path, text in files.items())


def _results(index: SearchIndex) -> list[object]:
    return [(index.search(query, k=20), index.search_symbols(query)) for query in QUERIES]


def test_scores_are_those_of_bm25s_own_index_of_the_same_tokens():
    documents = [file_document(path, dedent(source).lstrip()) for path, source in CORPUS.items()]
    reference = bm25s.BM25()
    reference.index(
        [path_tokens(d.path) + tokenize(d.text) for d in documents], show_progress=False
    )
    index = build(documents)
    for query in ("get user model", "render pdf invoice", "fetch invoice list", "password"):
        tokens = [token for token in tokenize(query) if token in reference.vocab_dict]
        ids = [index.vocabulary.index(token) for token in tokens]
        assert np.array_equal(
            index._retriever.get_scores_from_ids(ids), reference.get_scores(tokens)
        )


def test_a_file_material_counts_what_tokenize_yields_for_each_chunk():
    text = "".join(f"def handler_{n}(requestData):\n    return {n}\n\n" for n in range(60))
    definitions = extract("h.py", "python", text.encode()).definitions
    material = FileMaterial.from_text(text, definitions)
    chunks = chunk_documents("h.py", text, definitions)
    assert [(c.start_line, c.end_line) for c in chunks] == list(
        zip(material.starts.tolist(), material.ends.tolist(), strict=True)
    )
    terms = material.terms
    for row, chunk in enumerate(chunks):
        span = slice(terms.indptr[row], terms.indptr[row + 1])
        counted = {
            terms.vocabulary[term]: count
            for term, count in zip(
                terms.terms[span].tolist(), terms.counts[span].tolist(), strict=True
            )
        }
        assert counted == Counter(tokenize(chunk.text))


def test_materials_counted_together_equal_materials_counted_alone():
    together = FileMaterial.from_texts([(text, ()) for text in COMMIT_ONE.values()])
    for material, text in zip(together, COMMIT_ONE.values(), strict=True):
        assert material.to_bytes("k") == FileMaterial.from_text(text).to_bytes("k")


def test_a_file_material_round_trips_through_bytes():
    material = _materials(COMMIT_ONE)[_key(COMMIT_ONE["shop/models.py"])]
    key = _key(COMMIT_ONE["shop/models.py"])
    again = FileMaterial.from_bytes(material.to_bytes(key), key)
    assert again.definitions == material.definitions
    assert again.terms.vocabulary == material.terms.vocabulary
    assert again.to_bytes(key) == material.to_bytes(key)


def test_damaged_or_misfiled_material_bytes_are_refused():
    key = _key("x")
    data = bytearray(FileMaterial.from_text("def alpha_beta():\n    pass\n").to_bytes(key))
    with pytest.raises(ValueError, match="belongs to another"):
        FileMaterial.from_bytes(bytes(data), _key("y"))
    data[-3] ^= 0xFF
    with pytest.raises(ValueError, match="damaged"):
        FileMaterial.from_bytes(bytes(data), key)
    with pytest.raises(ValueError, match="damaged"):
        FileMaterial.from_bytes(bytes(data[:10]), key)


def test_an_index_updated_from_the_previous_one_equals_one_built_from_scratch():
    base = build_files(_files(COMMIT_ONE), _materials(COMMIT_ONE))
    changed = {
        key: material
        for key, material in _materials(COMMIT_TWO).items()
        if key not in {_key(text) for text in COMMIT_ONE.values()}
        or key == _key(COMMIT_ONE["web/app.js"])  # renamed: same content, new path
    }
    updated = build_files(_files(COMMIT_TWO), changed, base)
    scratch = build_files(_files(COMMIT_TWO), _materials(COMMIT_TWO))
    assert _results(updated) == _results(scratch)
    assert updated.vocabulary == scratch.vocabulary
    assert [d.id for d in updated.documents] == [d.id for d in scratch.documents]
    for name in ("term_indptr", "post_scores"):
        assert np.array_equal(updated._columns[name], scratch._columns[name])
    assert updated.search("legacy discount") == []
    assert "legacy" not in updated.vocabulary
    assert updated.search_symbols("shipping_estimate")[0][0].path == "shop/models.py"


def test_files_carried_over_need_no_material_and_changed_ones_do():
    base = build_files(_files(COMMIT_ONE), _materials(COMMIT_ONE))
    carried_only = [item for item in _files(COMMIT_TWO) if base.files.get(item[0]) == item[1]]
    assert build_files(carried_only, {}, base).files == dict(carried_only)
    with pytest.raises(KeyError):
        build_files(_files(COMMIT_TWO), {}, base)


def test_an_updated_index_round_trips_and_keeps_updating(tmp_path):
    base = build_files(_files(COMMIT_ONE), _materials(COMMIT_ONE))
    base.save(tmp_path / "one")
    updated = build_files(
        _files(COMMIT_TWO), _materials(COMMIT_TWO), SearchIndex.load(tmp_path / "one")
    )
    updated.save(tmp_path / "two")
    back = build_files(
        _files(COMMIT_ONE), _materials(COMMIT_ONE), SearchIndex.load(tmp_path / "two")
    )
    assert _results(back) == _results(base)


def test_a_damaged_index_is_refused_when_loaded(tmp_path):
    build_files(_files(COMMIT_ONE), _materials(COMMIT_ONE)).save(tmp_path)
    data = bytearray((tmp_path / "index.msgpack").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "index.msgpack").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        SearchIndex.load(tmp_path)
