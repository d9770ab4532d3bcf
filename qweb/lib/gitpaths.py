"""The one rule for paths that qweb writes into a git tree.

Every path that enters a tree passes ``path_refusal``: archive entries, a model's edits, a
reviewer's hand edit, and the store's own writes (as defence in depth). It refuses what git's
``verify_path`` refuses with ``core.protectNTFS`` and ``core.protectHFS`` switched on, which
is also what ``git fsck`` reports as ``hasDotgit`` and ``gitmodulesSymlink``: a tree qweb
writes passes ``git fsck --strict`` and checks out safely on Windows and macOS, where names
other than ``.git`` reach the ``.git`` folder. On top of that come qweb's own rules for names
that are surprising anywhere (backslashes, drive letters, control characters).

Reasons are fragments that follow the path, ready for "path …" or "The archive entry X …".
"""

from __future__ import annotations

import re
import string
import unicodedata

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
# git compares these names in ASCII only (str.lower would also fold, say, the Kelvin sign).
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# HFS+ ignores these code points when it compares names (git's next_hfs_char), so
# ".g\u200cit" opens the .git folder on a Mac.
_HFS_IGNORED = frozenset(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)


def path_refusal(path: str, *, symlink: bool = False) -> str | None:
    """Why ``path`` must not be written into a tree (``None`` when it may be).

    ``path`` is a relative POSIX path as stored in git (``a/b.py``); ``symlink`` says the
    entry is a symbolic link, which some names (``.gitmodules``) must never be.
    """
    if not path:
        return "is empty"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not UTF-8"
    if size > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    for char in path:
        if unicodedata.category(char) == "Cc":
            return f"contains the control character U+{ord(char):04X}"
    if "\\" in path:
        # A separator on Windows, a name character on POSIX: either reading is a surprise.
        return "contains a backslash"
    if path.startswith("/"):
        return "is an absolute path"
    if _DRIVE_LETTER.match(path):
        return "starts with a Windows drive letter"
    parts = path.split("/")
    for position, part in enumerate(parts, start=1):
        reason = _component_refusal(part, symlink=symlink and position == len(parts))
        if reason:
            return reason
    return None


def _component_refusal(name: str, *, symlink: bool) -> str | None:
    if name == "":
        return "has an empty component"
    if name in (".", ".."):
        return f"contains {name!r}"
    if len(name.encode("utf-8")) > MAX_COMPONENT_BYTES:
        return f"has a name longer than {MAX_COMPONENT_BYTES} bytes"
    alias = _git_dir_alias(name)
    if alias is not None:
        # Hooks and config in there run code on the next git command.
        return f"is inside .git ({alias})" if alias else "is inside .git"
    if symlink and _is_gitmodules(name):
        # git reads .gitmodules from the work tree: through a link it reads any file.
        return f"is a symbolic link that git would read as .gitmodules ({_show(name)})"
    return None


def _git_dir_alias(name: str) -> str | None:
    """``""`` for ``.git`` itself, how ``name`` reaches it elsewhere, or ``None``."""
    lowered = name.translate(_ASCII_LOWER)
    if lowered == ".git":
        return ""
    shown = _show(name)
    if _ntfs_matches(lowered, ".git", "git~1"):
        if ":" in name:
            return f"on Windows {shown} is a stream of .git"
        if lowered.startswith("git~"):
            return f"{shown} is the Windows short name of .git"
        return f"Windows ignores the trailing dots and spaces of {shown}"
    ignored = _hfs_ignored(lowered)
    if ignored and "".join(ch for ch in lowered if ch not in ignored) == ".git":
        codes = ", ".join(f"U+{ord(ch):04X}" for ch in sorted(ignored))
        return f"macOS ignores {codes} in {shown}"
    return None


def _is_gitmodules(name: str) -> bool:
    lowered = name.translate(_ASCII_LOWER)
    if _ntfs_matches(lowered, ".gitmodules", *(f"gitmod~{n}" for n in "1234")):
        return True
    if _ntfs_fallback_short_name(lowered, "gi7eba"):
        return True
    ignored = _hfs_ignored(lowered)
    return "".join(ch for ch in lowered if ch not in ignored) == ".gitmodules"


def _ntfs_matches(lowered: str, *names: str) -> bool:
    # NTFS drops trailing dots and spaces, and "name:stream" is a stream of "name".
    stem = lowered.split(":", 1)[0].rstrip(". ")
    return stem in names


def _ntfs_fallback_short_name(lowered: str, prefix: str) -> bool:
    """Windows' other 8.3 form: up to six characters of a hash, ``~`` and a number."""
    stem = lowered.split(":", 1)[0]
    head, tilde, number = stem[:8].partition("~")
    return (
        bool(tilde)
        and len(head) <= 6
        and prefix.startswith(head)
        and number[:1] in set("123456789")
        and number.isdigit()
        and len(stem) >= 8
        and stem[8:].strip(". ") == ""
    )


def _hfs_ignored(text: str) -> set[str]:
    return {ch for ch in text if ord(ch) in _HFS_IGNORED}


def _show(name: str) -> str:
    return repr(name) if name.isprintable() else ascii(name)
