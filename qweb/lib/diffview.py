"""What the diff viewer shows of a ``FileDiff``: each hunk's lines highlighted, unified and split.

One viewer for every diff qweb shows (a refactor's proposal, a commit, a comparison of two
refs), fed by ``templates/_diff_hunks.html``. The file's whole old and new text is
highlighted by Pygments once, then cut into lines, so a line inside a string or comment that
started above the hunk is coloured as it is in the file.
"""

from __future__ import annotations

from typing import Any

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from qweb.lib.diffs import FileDiff

MAX_HIGHLIGHT_BYTES = 512 * 1024


def highlighted_lines(path: str, text: str | None) -> list[str]:
    """``text`` as Pygments HTML, one string per line (plain text past the size limit)."""
    if text is None:
        return []
    if len(text) > MAX_HIGHLIGHT_BYTES:
        lexer: Any = TextLexer()
    else:
        try:
            lexer = get_lexer_for_filename(path, stripnl=False, ensurenl=False)
        except ClassNotFound:
            lexer = TextLexer()
    html = highlight(text, lexer, HtmlFormatter(nowrap=True))
    return html.split("\n")


def diff_rows(diff: FileDiff, old_lines: list[str], new_lines: list[str]) -> list[dict[str, Any]]:
    """Each hunk's lines with highlighted HTML, and side-by-side pairs of them.

    Every row says which side and line it stands for (``side``, ``number``), where the
    review hangs comment threads and findings; a line without HTML is shown as plain text.
    """
    hunks = []
    for hunk in diff.hunks:
        lines = []
        for line in hunk.lines:
            if line.kind == "note":
                continue
            removed = line.kind == "remove"
            source = old_lines if removed else new_lines
            number = line.old_no if removed else line.new_no
            html = source[number - 1] if number and number <= len(source) else None
            lines.append(
                {
                    "line": line,
                    "html": html,
                    "side": "old" if removed else "new",
                    "number": number,
                    "threads": [],
                    "findings": [],
                }
            )
        hunks.append({"hunk": hunk, "lines": lines, "pairs": side_by_side(lines)})
    return hunks


def side_by_side(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pairs for the two-column view: a change block's removed lines beside its added ones."""
    pairs: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    added: list[dict[str, Any]] = []
    for row in [*lines, None]:
        kind = row["line"].kind if row else None
        if kind == "remove":
            removed.append(row)
            continue
        if kind == "add":
            added.append(row)
            continue
        for index in range(max(len(removed), len(added))):
            pairs.append(
                {
                    "left": removed[index] if index < len(removed) else None,
                    "right": added[index] if index < len(added) else None,
                }
            )
        removed, added = [], []
        if row is not None:
            pairs.append({"left": row, "right": row})
    return pairs
