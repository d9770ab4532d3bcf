"""Checks on the file paths that a model's answer asks us to write.

A path in an answer is untrusted text that ends up as a file name inside a repository, so
it passes qweb's one rule for tree paths (``qweb.lib.gitpaths``: no absolute paths or drive
letters, no ``..``, no backslashes, nothing that is ``.git`` here or on Windows or macOS),
and one more of its own: no format characters anywhere (right-to-left overrides and
zero-width characters hide what the path really says from the person reviewing it).
"""

from __future__ import annotations

import unicodedata

from qweb.lib.gitpaths import path_refusal


class UnsafePath(ValueError):
    """A path that must not be written; ``reason`` says why in words for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clean_path(path: str) -> str:
    """Return ``path`` as a normal relative POSIX path, or raise ``UnsafePath``."""
    if not path:
        raise UnsafePath("empty path")
    for char in path:
        if unicodedata.category(char) in ("Cf", "Cs"):
            raise UnsafePath(f"path contains the control character U+{ord(char):04X}")
    # "./a" and "a/./b" are how people write "a" and "a/b"; the rule judges the result.
    parts = [part for part in path.split("/") if part != "."]
    if not parts:
        raise UnsafePath("path names no file")
    cleaned = "/".join(parts)
    reason = path_refusal(cleaned)
    if reason:
        raise UnsafePath(f"path {reason}")
    return cleaned
