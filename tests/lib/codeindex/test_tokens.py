from __future__ import annotations

import pytest

from qweb.lib.codeindex.tokens import identifier_words, tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("get_user_model", ["get_user_model", "get", "user", "model"]),
        ("HTTPResponseRedirect", ["httpresponseredirect", "http", "response", "redirect"]),
        ("parseHTMLString", ["parsehtmlstring", "parse", "html", "string"]),
        ("my-css-class", ["my-css-class", "my", "css", "class"]),
        ("i18n_patterns", ["i18n_patterns", "i18n", "18", "patterns"]),
        ("base64", ["base64", "base", "64"]),
        ("__init__", ["__init__", "init"]),
    ],
)
def test_it_keeps_the_whole_identifier_and_its_parts(text, expected):
    assert tokenize(text) == expected


def test_it_lowercases_so_styles_meet():
    assert set(tokenize("getUserModel")) & set(tokenize("get_user_model")) == {
        "get",
        "user",
        "model",
    }


def test_it_drops_stop_words_keywords_and_one_letter_tokens():
    assert tokenize("How does the URL resolver work?") == ["url", "resolver", "work"]
    assert tokenize("x = self.a + foo_bar(i)") == ["foo_bar", "foo", "bar"]


def test_it_counts_every_occurrence_for_bm25():
    assert sorted(tokenize("render render(request)")) == ["render", "render", "request"]


def test_identifier_words_keeps_short_words_for_name_matching():
    assert identifier_words("getURL") == ("get", "url")
    assert identifier_words("a_b") == ("a", "b")
