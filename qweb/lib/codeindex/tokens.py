"""Identifier-aware tokenizer for code search: whole identifiers plus their camel/snake parts."""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

# An identifier, allowing kebab-case joins (CSS classes, CLI flags, template names);
# "a-b" written as subtraction then yields "a-b", "a" and "b", which costs nothing.
IDENTIFIER = re.compile(r"[A-Za-z_$\d][\w$]*(?:-[A-Za-z_$][\w$]*)*")
# Parts of one identifier: acronyms before a capitalised word ("HTTPResponse" → HTTP,
# Response), capitalised or lower words, remaining capitals, digit runs.
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

_SEGMENT_SEPARATOR = re.compile(r"[_\-$]+")

MIN_TOKEN_LENGTH = 2
# English glue words from questions and docstrings, and the keywords every file of a
# language repeats; neither helps tell files apart, and they crowd BM25's posting lists.
STOP_TOKENS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "how",
        "if",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "def",
        "self",
        "cls",
        "return",
        "import",
        "elif",
        "else",
        "pass",
        "none",
        "true",
        "false",
        "null",
        "nil",
        "var",
        "let",
        "const",
        "end",
        "then",
    }
)


@lru_cache(maxsize=262_144)
def identifier_tokens(identifier: str) -> tuple[str, ...]:
    """Tokens of one identifier: the whole of it lowercased, then each snake/kebab/camel part."""
    whole = identifier.lower()
    candidates = [whole]
    segments = [segment for segment in _SEGMENT_SEPARATOR.split(identifier) if segment]
    for segment in segments:
        candidates.append(segment.lower())
        words = _PART.findall(segment)
        if len(words) > 1:
            # "i18n" stays searchable as itself as well as "18"; "userModel" as "user", "model".
            candidates.extend(word.lower() for word in words)
    tokens: list[str] = []
    for token in candidates:
        if len(token) >= MIN_TOKEN_LENGTH and token not in STOP_TOKENS and token not in tokens:
            tokens.append(token)
    return tuple(tokens)


def tokenize(text: str) -> list[str]:
    """Split code or a question into search tokens, one entry per occurrence (BM25 counts them)."""
    tokens: list[str] = []
    # Counting first runs in C and leaves one Python step per distinct identifier, which is
    # most of the tokenizer's speed on real files; token order does not matter to BM25.
    for identifier, count in Counter(IDENTIFIER.findall(text)).items():
        parts = identifier_tokens(identifier)
        tokens.extend(parts * count if count > 1 else parts)
    return tokens


def identifier_words(identifier: str) -> tuple[str, ...]:
    """Lowercased words of an identifier, keeping short ones: ``getURL`` → ("get", "url")."""
    return tuple(part.lower() for part in _PART.findall(identifier))


def plural_stem(token: str) -> str:
    """A lowercase token without its plural ending: "handlers" → "handler", "classes" → "class".

    Deliberately light: only the ending that most often separates a question's word from a
    file or folder name ("session middleware" → ``sessions/middleware.py``).
    """
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 4 and token.endswith("sses"):
        return token[:-2]
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token
