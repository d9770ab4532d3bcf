"""Whole-file BM25 from the chunk index, plural variants, and exact definition look-up."""

from __future__ import annotations

import hashlib

import bm25s
import numpy as np
import pytest

from qweb.lib.codeindex.search import FileMaterial, SearchIndex, build_files, path_tokens
from qweb.lib.codeindex.symbols import extract
from qweb.lib.codeindex.tokens import plural_stem, tokenize


def _long_module(name: str, body: str, functions: int) -> str:
    """A module long enough to be split into several chunks."""
    return "".join(
        f"def {name}_{n}(request):\n    {body}\n    return {n}\n\n\n" for n in range(functions)
    )


FILES = {
    "signing/timestamps.py": _long_module("unsign", "check_signature(age, max_age)", 40),
    "signing/keys.py": "def salted_key(secret):\n    return derive(secret, 'salt')\n",
    "cache/backends.py": _long_module("make_key", "prefix_version(key, prefix)", 30),
    "cache/notes.txt": "The cache key is the prefix, the version and the key.\n",
    "middleware/csrf.py": "def check_token(request):\n    return compare(request.token)\n",
}


def _key(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    materials = {
        _key(text): FileMaterial.from_text(
            text,
            extract(path, "python", text.encode()).definitions if path.endswith(".py") else (),
        )
        for path, text in FILES.items()
    }
    return build_files(sorted((path, _key(text)) for path, text in FILES.items()), materials)


def test_long_files_are_searched_as_several_chunks(index):
    chunks = [d for d in index.documents if d.path == "signing/timestamps.py"]
    assert len(chunks) > 1


@pytest.mark.parametrize(
    "query", ["signature max age", "cache prefix version", "check token request", "salt"]
)
def test_file_scores_are_bm25s_scores_of_each_file_as_one_document(index, query):
    # Each file once, its path's tokens once: what a whole-file index of the same tokens holds.
    reference = bm25s.BM25()
    reference.index(
        [path_tokens(path) + tokenize(FILES[path]) for path in index.paths], show_progress=False
    )
    tokens = [token for token in tokenize(query) if token in reference.vocab_dict]
    assert np.allclose(index.file_scores(query), reference.get_scores(tokens), rtol=1e-5)


def test_a_plural_in_the_question_finds_the_singular_in_the_code(index):
    scores = dict(zip(index.paths, index.file_scores("signatures").tolist(), strict=True))
    assert scores["signing/timestamps.py"] > 0
    assert scores == dict(zip(index.paths, index.file_scores("signature").tolist(), strict=True))


def test_words_nobody_wrote_score_nothing(index):
    assert not index.file_scores("kubernetes helm chart").any()


def test_definitions_are_looked_up_by_exact_name(index):
    found = index.definitions_named("salted_key")
    assert [(entry.path, entry.kind) for entry in found] == [("signing/keys.py", "function")]
    assert index.definitions_named("salted") == []


@pytest.mark.parametrize(
    ("token", "stem"),
    [
        ("handlers", "handler"),
        ("sessions", "session"),
        ("classes", "class"),
        ("properties", "property"),
        ("class", "class"),
        ("status", "status"),
        ("analysis", "analysis"),
        ("is", "is"),
    ],
)
def test_plural_stem_drops_only_the_plural_ending(token, stem):
    assert plural_stem(token) == stem
