"""Checks on the file paths that a model's answer asks us to write.

A path in an answer is untrusted text that ends up as a file name inside a repository
checkout, so only plain relative paths below the repository root pass: no absolute paths
or drive letters, no ``..``, no backslashes (a separator on Windows, a file name character
on POSIX: either reading is a surprise), no control or format characters (they hide what
the path really says), nothing inside ``.git`` (hooks and config there run code).
"""

from __future__ import annotations

import re
import unicodedata

MAX_PATH_BYTES = 4096

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
# NTFS ignores trailing dots and spaces and answers to 8.3 short names, so ".git." and
# "GIT~1" name the .git folder there (git itself refuses these for the same reason).
_GIT_DIR_NAMES = {".git", "git~1"}


class UnsafePath(ValueError):
    """A path that must not be written; ``reason`` says why in words for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clean_path(path: str) -> str:
    """Return ``path`` as a normal relative POSIX path, or raise ``UnsafePath``."""
    if not path:
        raise UnsafePath("empty path")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise UnsafePath(f"path is longer than {MAX_PATH_BYTES} bytes")
    for char in path:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            raise UnsafePath(f"path contains the control character U+{ord(char):04X}")
    if "\\" in path:
        raise UnsafePath("path contains a backslash")
    if path.startswith("/"):
        raise UnsafePath("absolute path")
    if _DRIVE_LETTER.match(path):
        raise UnsafePath("path starts with a drive letter")
    parts = []
    for part in path.split("/"):
        if part == ".":
            continue
        if part == "":
            raise UnsafePath("path has an empty component")
        if part == "..":
            raise UnsafePath("path contains '..'")
        if part.rstrip(". ").lower() in _GIT_DIR_NAMES:
            raise UnsafePath("path is inside .git")
        parts.append(part)
    if not parts:
        raise UnsafePath("path names no file")
    return "/".join(parts)
