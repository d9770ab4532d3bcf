"""git's unified diffs as data (files, hunks, numbered lines), and patches of chosen hunks.

Parsing is unidiff's; the diffs themselves always come from git (``GitStore.diff``), and
the patches built here go back to git (``GitStore.apply_patch``), so no diff or patch
arithmetic is written by hand.
"""

from __future__ import annotations

import difflib
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import unidiff

from qweb.lib.gitstore import GIT, git_env

WHOLE_FILE = -1


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "context", "add", "remove", "note" (git's "\ No newline at end of file")
    old_no: int | None
    new_no: int | None
    text: str


@dataclass
class Hunk:
    index: int
    old_start: int
    old_length: int
    new_start: int
    new_length: int
    section: str
    lines: list[DiffLine]
    text: str

    @property
    def added(self) -> int:
        return sum(line.kind == "add" for line in self.lines)

    @property
    def removed(self) -> int:
        return sum(line.kind == "remove" for line in self.lines)


@dataclass
class FileDiff:
    path: str
    old_path: str
    status: str  # "added", "modified", "deleted", "renamed"
    binary: bool
    header: str
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(hunk.added for hunk in self.hunks)

    @property
    def removed(self) -> int:
        return sum(hunk.removed for hunk in self.hunks)

    @property
    def reviewed_per_hunk(self) -> bool:
        """Modified text files are reviewed hunk by hunk; anything else as a whole."""
        return self.status == "modified" and not self.binary and bool(self.hunks)

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old_path": self.old_path,
            "status": self.status,
            "binary": self.binary,
            "added": self.added,
            "removed": self.removed,
            "hunks": len(self.hunks),
        }

    def patch(self, keep: Iterable[int] | None = None) -> str:
        """This file's patch; with ``keep``, only those hunks ("" when none is kept)."""
        if keep is None:
            return self.header + "".join(hunk.text for hunk in self.hunks)
        wanted = set(keep)
        hunks = [hunk.text for hunk in self.hunks if hunk.index in wanted]
        return self.header + "".join(hunks) if hunks else ""


_KINDS = {"+": "add", "-": "remove", " ": "context", "\\": "note"}


def _strip_prefix(name: str) -> str:
    return name[2:] if name.startswith(("a/", "b/")) else name


def parse_diff(text: str) -> list[FileDiff]:
    """The files of git's unified diff (``git diff -M``), in git's order."""
    files = []
    for patched in unidiff.PatchSet(text):
        if patched.is_added_file:
            status = "added"
        elif patched.is_removed_file:
            status = "deleted"
        elif patched.is_rename:
            status = "renamed"
        else:
            status = "modified"
        header = str(patched.patch_info)
        if len(patched):  # binary files and pure renames have no ---/+++ lines
            header += f"--- {patched.source_file}\n+++ {patched.target_file}\n"
        hunks = [
            Hunk(
                index=index,
                old_start=hunk.source_start,
                old_length=hunk.source_length,
                new_start=hunk.target_start,
                new_length=hunk.target_length,
                section=hunk.section_header,
                lines=[
                    DiffLine(
                        kind=_KINDS.get(line.line_type, "context"),
                        old_no=line.source_line_no,
                        new_no=line.target_line_no,
                        text=line.value.rstrip("\n"),
                    )
                    for line in hunk
                ],
                text=str(hunk),
            )
            for index, hunk in enumerate(patched)
        ]
        old_path = _strip_prefix(patched.source_file)
        path = _strip_prefix(patched.target_file)
        files.append(
            FileDiff(
                path=old_path if status == "deleted" else path,
                old_path=path if status == "added" else old_path,
                status=status,
                binary=patched.is_binary_file,
                header=header,
                hunks=hunks,
            )
        )
    return files


def diff_files(changes: Mapping[str, tuple[bytes | None, bytes | None]]) -> str:
    """git's unified diff of files given as ``{path: (old, new)}`` (None: absent), no repo.

    Written to a private folder and compared with ``git diff --no-index``, so the output is
    exactly what git would show for the same change in a repository.
    """
    if not changes:
        return ""
    with tempfile.TemporaryDirectory(prefix="qweb-diff-") as folder:
        root = Path(folder)
        for side, index in (("a", 0), ("b", 1)):
            (root / side).mkdir()
            for path, contents in changes.items():
                data = contents[index]
                if data is None:
                    continue
                target = (root / side / path).resolve()
                if not target.is_relative_to(root / side):
                    raise ValueError(f"{path!r} is outside the tree.")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        result = subprocess.run(
            [
                GIT,
                "-c",
                "core.quotePath=false",
                "diff",
                "--no-index",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--no-prefix",
                "a",
                "b",
            ],
            cwd=root,
            capture_output=True,
            check=False,
            timeout=120,
            env=git_env(),
        )
        if result.returncode not in (0, 1):
            raise RuntimeError(result.stderr.decode(errors="replace").strip())
        return result.stdout.decode("utf-8", errors="replace")


def line_changes(old: str, new: str) -> list[tuple[str, str]]:
    """``(kind, text)`` per line from ``old`` to ``new``: "context", "remove" or "add"."""
    before, after = old.splitlines(), new.splitlines()
    rows: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [("context", line) for line in before[i1:i2]]
            continue
        rows += [("remove", line) for line in before[i1:i2]]
        rows += [("add", line) for line in after[j1:j2]]
    return rows
