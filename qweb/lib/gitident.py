"""Commit identities git can store, made from any display name and e-mail address.

An ident line is ``Name <email> timestamp zone``: a ``<``, ``>`` or newline in a field would
end it early, so git itself (``ident.c``, ``strbuf_addstr_without_crud``) trims "crud" from
both ends of each field (bytes up to space and ``.,:;<>"\\'``) and drops ``<``, ``>`` and
newlines inside. ``git_identity`` follows the same rules, so ``commit-tree`` stores what it
is given; it also turns other control characters into spaces (``fast-import`` would store
them as they are), and falls back rather than fail when nothing is left: a name becomes the
address's local part, an address ``unknown@localhost``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

FALLBACK_NAME = "unknown"
FALLBACK_EMAIL = "unknown@localhost"
MAX_NAME_CHARS = 200
MAX_EMAIL_CHARS = 254

_CRUD = frozenset(".,:;<>\"\\'")
_DELIMITERS = re.compile(r"[<>\n]")
_SPACES = re.compile(r"\s{2,}")


class GitIdentity(NamedTuple):
    """A name and an e-mail address that git stores exactly as given."""

    name: str
    email: str


def git_identity(name: str | None, email: str | None) -> GitIdentity:
    """The identity git would record for ``name`` and ``email``; never empty, never refused."""
    clean_email = _clean(email or "", MAX_EMAIL_CHARS) or FALLBACK_EMAIL
    clean_name = _clean(name or "", MAX_NAME_CHARS)
    if not clean_name:
        clean_name = _clean(clean_email.split("@", 1)[0], MAX_NAME_CHARS) or FALLBACK_NAME
    return GitIdentity(clean_name, clean_email)


def _is_crud(char: str) -> bool:
    return ord(char) <= 32 or char in _CRUD


def _clean(value: str, limit: int) -> str:
    # Unpaired surrogates cannot be encoded for git's command line or stream.
    value = value.encode("utf-8", "replace").decode("utf-8")
    # Line and paragraph separators and control characters (newlines too) become spaces:
    # "Alice\nSmith" reads as "Alice Smith", where git would write "AliceSmith".
    value = "".join(" " if _is_control(char) else char for char in value)
    value = _SPACES.sub(" ", _DELIMITERS.sub("", _strip_crud(value)))
    return _strip_crud(value[:limit])


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in {"Cc", "Zl", "Zp"}


def _strip_crud(value: str) -> str:
    start, end = 0, len(value)
    while start < end and _is_crud(value[start]):
        start += 1
    while end > start and _is_crud(value[end - 1]):
        end -= 1
    return value[start:end]
