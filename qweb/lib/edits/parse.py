"""Reading edit blocks out of a coding model's answer.

The answer format (what the system prompt teaches the model; Aider's SEARCH/REPLACE is the
reference)::

    path/to/file.py
    ```python
    <<<<<<< SEARCH
    exact lines from the current file
    =======
    the lines that replace them
    >>>>>>> REPLACE
    ```

- The file path is the last non-blank line before the block, looking past the opening
  fence. It may be wrapped in ``**`` or backticks, end with a colon, follow a Markdown
  heading mark (``### path``), a list bullet or ``File:``, carry a remark in parentheses
  (``path (new file)``), or sit in the fence's info string (```` ```python
  path/to/file.py ````). A path line names one file: no spaces, and it contains ``/``,
  ends in an extension (``.py``, ``.env``) or is a well-known extensionless name
  (``Makefile``, ``Dockerfile``...). A prose line that quotes exactly one path with a
  ``/`` in backticks (``Then in `a/b.py`:``) names that file too.
- Several blocks may follow one another in one fence; a block with no path line of its
  own belongs to the file of the block before it in the same fence, or, outside fences,
  to the file of the block just before it when nothing but blank lines and fences lies
  between them. A block may also stand without any fence.
- New file: a block whose SEARCH part is empty creates the file with the REPLACE part as
  its whole content (refused when applied if the file exists and is not empty).
- Delete: a line ``DELETE path/to/file.py`` outside blocks.
- Rename: a line ``RENAME old/path.py -> new/path.py`` outside blocks (``→`` and ``=>``
  work too). Operations run in answer order: blocks after a rename name the new path,
  blocks before it the old one.
- Marker lines may carry surrounding spaces and use 5 to 9 of their characters
  (``<<<<< SEARCH``, ``=========``, ``>>>>>>>>> REPLACE``), as Aider allows. When the
  lines between SEARCH and REPLACE hold more than one divider-looking line, the first one
  of exactly seven ``=`` is the divider, else the first one: file content such as a
  reStructuredText underline stays content.
- Everything else (prose, other code fences) is ignored. CRLF answers read like LF ones;
  SEARCH and REPLACE text come out with ``\\n`` line ends, each line ending in one.

Faults are reported as ``ParseProblem``s and the affected block is left out, never half
read: a block the answer never closes (the model stopped mid-answer, or started another
block first), a block with no file path, a block without its ``=======`` divider, a
stray ``>>>>>>> REPLACE``, an answer over ``max_chars`` (only the part before the cap is
read). Complete blocks before and after a faulty one are still returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_FENCE = re.compile(r"^\s*(?:`{3,}|~{3,})\s*(.*?)\s*$")
_PATH_ARG = r"(`[^`\n]+`|\S+)"
_DELETE = re.compile(rf"^\s*DELETE:?\s+{_PATH_ARG}\s*$")
_RENAME = re.compile(rf"^\s*RENAME:?\s+{_PATH_ARG}\s*(?:->|→|=>)\s*{_PATH_ARG}\s*$")
# Markdown heading marks, list bullets, and "File:" labels before a path.
_HEADER_PREFIX = re.compile(r"^(?:#+\s*|[-*+]\s+|\d+[.)]\s+|(?:file|path)\s*:\s*)", re.IGNORECASE)
# "app/x.py (new file)", "app/x.py — updated".
_REMARK = re.compile(r"\s+(?:\([^()]*\)|[-–—]\s.*)\s*:?$")
_EXTENSION = re.compile(r"\.[A-Za-z0-9_]+$")
_BACKTICKED = re.compile(r"`([^`\s]+)`")
_EXTENSIONLESS_NAMES = {
    "makefile",
    "dockerfile",
    "containerfile",
    "procfile",
    "gemfile",
    "rakefile",
    "justfile",
    "vagrantfile",
    "jenkinsfile",
    "license",
    "copying",
    "authors",
    "readme",
    "changelog",
    "codeowners",
}


@dataclass(frozen=True)
class EditBlock:
    """Replace ``search`` by ``replace`` in ``path`` (create the file when search is empty)."""

    path: str
    search: str
    replace: str
    index: int  # order among the operations of the answer, from 0
    line: int  # 1-based line of the answer where the block starts (its SEARCH marker)


@dataclass(frozen=True)
class DeleteFile:
    path: str
    index: int
    line: int


@dataclass(frozen=True)
class RenameFile:
    old_path: str
    new_path: str
    index: int
    line: int


@dataclass(frozen=True)
class ParseProblem:
    path: str | None
    reason: str
    line: int


Operation = EditBlock | DeleteFile | RenameFile


@dataclass
class ParsedAnswer:
    operations: list[Operation] = field(default_factory=list)
    problems: list[ParseProblem] = field(default_factory=list)


def parse_answer(text: str, *, max_chars: int = 2_000_000) -> ParsedAnswer:
    """Read the edit operations of a model's answer, in answer order."""
    problems: list[ParseProblem] = []
    if len(text) > max_chars:
        problems.append(
            ParseProblem(
                path=None,
                reason=(
                    f"the answer is {len(text)} characters long, over the limit of "
                    f"{max_chars}: nothing after that was read"
                ),
                line=text.count("\n", 0, max_chars) + 1,
            )
        )
        text = text[:max_chars]
        # A line cut in two could read as a different marker; read whole lines only.
        text = text[: text.rfind("\n") + 1]
    text = text.replace("\r\n", "\n")
    parser = _Parser(text.split("\n"))
    parser.run()
    return ParsedAnswer(
        operations=parser.operations,
        problems=sorted([*problems, *parser.problems], key=lambda p: p.line),
    )


def _strip_decoration(line: str) -> str:
    token = _HEADER_PREFIX.sub("", line.strip())
    token = _REMARK.sub("", token)
    return token.strip("*`:'\" \t")


def _looks_like_path(token: str) -> bool:
    if not token or any(char.isspace() for char in token):
        return False
    if not any(char.isalnum() for char in token):
        return False
    if token.startswith(("<", ">", "=", "`", "~")):
        return False
    return (
        "/" in token
        or _EXTENSION.search(token) is not None
        or token.lower() in _EXTENSIONLESS_NAMES
    )


def path_from_line(line: str) -> str | None:
    """The file path that a header line names, or None when it names none."""
    token = _strip_decoration(line)
    if _looks_like_path(token):
        return token
    # Prose that quotes exactly one path: "Then in `app/models.py`:".
    quoted: list[str] = [t for t in _BACKTICKED.findall(line) if _looks_like_path(t) and "/" in t]
    if len(quoted) == 1 and len(line) <= 160:
        return quoted[0]
    return None


def _path_from_fence_info(info: str) -> str | None:
    words = info.split()
    if len(words) >= 2:
        for word in reversed(words[1:]):
            path = path_from_line(word)
            if path is not None:
                return path
        return None
    if len(words) == 1 and ("/" in words[0] or re.search(r"\w\.\w+$", words[0])):
        return path_from_line(words[0])
    return None


class _Parser:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.operations: list[Operation] = []
        self.problems: list[ParseProblem] = []
        self.in_fence = False
        self.fence_path: str | None = None
        # Where the previous block ended, and its file: a block right after another one,
        # with only blank lines and fences between, belongs to the same file.
        self.after_block = 0
        self.last_path: str | None = None

    def run(self) -> None:
        i = 0
        lines = self.lines
        while i < len(lines):
            line = lines[i]
            if _SEARCH.match(line):
                i = self._block(i)
                continue
            if _REPLACE.match(line):
                self._problem(None, "a >>>>>>> REPLACE marker without a block before it", i)
            elif (fence := _FENCE.match(line)) is not None:
                info = fence.group(1)
                if self.in_fence and not info:
                    self.in_fence = False
                    self.fence_path = None
                else:
                    self.in_fence = True
                    self.fence_path = _path_from_fence_info(info)
            elif (delete := _DELETE.match(line)) is not None:
                path = path_from_line(delete.group(1))
                if path is not None:
                    self.operations.append(
                        DeleteFile(path=path, index=len(self.operations), line=i + 1)
                    )
            elif (rename := _RENAME.match(line)) is not None:
                old_path = path_from_line(rename.group(1))
                new_path = path_from_line(rename.group(2))
                if old_path is not None and new_path is not None:
                    self.operations.append(
                        RenameFile(
                            old_path=old_path,
                            new_path=new_path,
                            index=len(self.operations),
                            line=i + 1,
                        )
                    )
            i += 1

    def _problem(self, path: str | None, reason: str, i: int) -> None:
        self.problems.append(ParseProblem(path=path, reason=reason, line=i + 1))

    def _path_before(self, i: int) -> str | None:
        only_blank_and_fences = True
        for j in range(i - 1, self.after_block - 1, -1):
            line = self.lines[j]
            if not line.strip():
                continue
            fence = _FENCE.match(line)
            if fence is not None:
                path = _path_from_fence_info(fence.group(1))
                if path is not None:
                    return path
                continue
            path = path_from_line(line)
            if path is not None:
                return path
            only_blank_and_fences = False
            break
        if self.in_fence and self.fence_path is not None:
            return self.fence_path
        if only_blank_and_fences and self.after_block > 0:
            return self.last_path
        return None

    def _block(self, start: int) -> int:
        """Read the block whose SEARCH marker is at ``start``; return the next line to read."""
        lines = self.lines
        path = self._path_before(start)
        end = start + 1
        while end < len(lines) and not (_REPLACE.match(lines[end]) or _SEARCH.match(lines[end])):
            end += 1
        where = f" for {path}" if path else ""
        if end == len(lines):
            self._problem(
                path,
                f"the block{where} is not closed: the answer ends before its "
                ">>>>>>> REPLACE line (the answer was probably cut off)",
                start,
            )
            return end
        if _SEARCH.match(lines[end]):
            self._problem(
                path,
                f"the block{where} is not closed: another <<<<<<< SEARCH starts at line "
                f"{end + 1} before its >>>>>>> REPLACE line",
                start,
            )
            self.after_block = end
            self.last_path = path
            return end
        self.after_block = end + 1
        dividers = [j for j in range(start + 1, end) if _DIVIDER.match(lines[j])]
        self.last_path = path
        if not dividers:
            self._problem(path, f"the block{where} has no ======= line between its parts", start)
            return end + 1
        sevens = [j for j in dividers if lines[j].strip() == "======="]
        divider = sevens[0] if sevens else dividers[0]
        if path is None:
            self._problem(None, "a block without a file path on the line before it", start)
            return end + 1
        if self.in_fence:
            self.fence_path = path
        self.operations.append(
            EditBlock(
                path=path,
                search=_joined(lines[start + 1 : divider]),
                replace=_joined(lines[divider + 1 : end]),
                index=len(self.operations),
                line=start + 1,
            )
        )
        return end + 1


def _joined(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)
