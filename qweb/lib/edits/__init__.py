"""Model answers with SEARCH/REPLACE edit blocks: parsing them and applying them safely.

No Django here: the chat app and the benchmark (``bench/edit_apply.py``) both use it.

Parse (``parse.py``; its docstring documents the answer format the model is taught)::

    parse_answer(text: str, *, max_chars: int = 2_000_000) -> ParsedAnswer

    ParsedAnswer(operations: list[EditBlock | DeleteFile | RenameFile],
                 problems: list[ParseProblem])
    EditBlock(path: str, search: str, replace: str, index: int, line: int)
    DeleteFile(path: str, index: int, line: int)
    RenameFile(old_path: str, new_path: str, index: int, line: int)
    ParseProblem(path: str | None, reason: str, line: int)

``index`` is the operation's order in the answer (from 0), ``line`` the 1-based answer line
where it starts. SEARCH/REPLACE text comes back with ``\\n`` line ends, every line ending
in one; an empty SEARCH is ``""``. Paths are as written (decoration stripped), not yet
checked: ``apply_answer`` checks them.

Apply one block (``apply.py``; its docstring documents the matching ladder)::

    apply_block(content: str, search: str, replace: str) -> BlockOutcome

    BlockOutcome(text: str | None,      # the new content; None when refused
                 how: str | None,       # "exact" | "whitespace" | "indentation" | "fuzzy"
                                        # | "created" (empty SEARCH on empty content) | None
                 confidence: float,     # 1.0 for exact..indentation; the score for fuzzy
                 reason: str,           # why refused, or a short note; "" when exact
                 start_line: int | None, end_line: int | None)  # 1-based lines of `content`
    BlockOutcome.status -> "applied" | "refused"

Apply a whole answer, in answer order (later blocks see earlier blocks' results; a RENAME
takes effect where it stands, so blocks after it name the new path)::

    apply_answer(parsed: ParsedAnswer,
                 read_file: Callable[[str], str | BinaryFile | NotAFile | None],
                 *, writable: Callable[[str], str | None] = anywhere) -> EditOutcome

    read_file(path) gets a cleaned relative path and returns the file's text at the base,
    None when nothing is there, BINARY_FILE for a file that is not text, and FOLDER,
    SYMLINK or SUBMODULE for what is not a file. Nothing is written into, through or in
    place of a folder, link, submodule or file ("a/b" where "a" is a file, "a" where "a/"
    is a folder, "link/x"): such edits and RENAME targets are refused with the reason, so
    a commit of ``files`` never deletes anything the results do not name. ``writable(path)``
    gives the reason a path may not be written (outside a scope), or None: operations on
    it and RENAMEs onto it are refused, so a rename is never half applied.

    EditOutcome(files: dict[str, str | None],  # each path changed -> new text, None = delete
                results: list[BlockResult],    # one per operation and per ParseProblem,
                                               # in answer order
                renamed: dict[str, str])       # old path -> new path
    EditOutcome.applied: int, .refused: int, .success_rate: float (applied / results)

    BlockResult(index: int,              # the operation's index; -1 for a ParseProblem
                path: str, status: str,  # "applied" | "refused"
                how: str | None,         # as BlockOutcome.how, or "deleted" | "renamed"
                confidence: float, reason: str,
                start_line: int | None, end_line: int | None,  # lines of the file text the
                                                               # block was applied to
                line: int)               # 1-based answer line of the operation

Paths (``paths.py``)::

    clean_path(path: str) -> str    # "./a/b" -> "a/b"; raises UnsafePath(reason)
"""

from __future__ import annotations

from qweb.lib.edits.apply import (
    BINARY_FILE,
    FOLDER,
    FUZZY_MIN_GAP,
    FUZZY_MIN_SCORE,
    MAX_FILE_BYTES,
    MAX_SEARCH_CHARS,
    SUBMODULE,
    SYMLINK,
    BinaryFile,
    BlockOutcome,
    BlockResult,
    EditOutcome,
    NotAFile,
    apply_answer,
    apply_block,
)
from qweb.lib.edits.parse import (
    DeleteFile,
    EditBlock,
    ParsedAnswer,
    ParseProblem,
    RenameFile,
    parse_answer,
)
from qweb.lib.edits.paths import UnsafePath, clean_path

__all__ = [
    "BINARY_FILE",
    "FOLDER",
    "FUZZY_MIN_GAP",
    "FUZZY_MIN_SCORE",
    "MAX_FILE_BYTES",
    "MAX_SEARCH_CHARS",
    "SUBMODULE",
    "SYMLINK",
    "BinaryFile",
    "BlockOutcome",
    "BlockResult",
    "DeleteFile",
    "EditBlock",
    "EditOutcome",
    "NotAFile",
    "ParseProblem",
    "ParsedAnswer",
    "RenameFile",
    "UnsafePath",
    "apply_answer",
    "apply_block",
    "clean_path",
    "parse_answer",
]
