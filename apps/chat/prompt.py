"""Chat's side of a turn's prompt: the ``@path`` mentions of a question.

The prompt itself is assembled by `apps.repos.turn`, which refactors use as well; its names
are re-exported here for the code that has always imported them from chat.
"""

from __future__ import annotations

import re

from apps.repos.turn import (
    SHORTENED,
    SYSTEM_PROMPT,
    HistoryTurn,
    PromptError,
    TurnPrompt,
    answer_reserve,
    compact_history,
    context_window,
    template_token_count,
    truncate_to_tokens,
    turn_prompt_build,
)

__all__ = [
    "SHORTENED",
    "SYSTEM_PROMPT",
    "HistoryTurn",
    "PromptError",
    "TurnPrompt",
    "answer_reserve",
    "compact_history",
    "context_window",
    "mentioned_paths",
    "template_token_count",
    "truncate_to_tokens",
    "turn_prompt_build",
]

_MENTION = re.compile(r"(?<![\w@])@([\w./\-]+[\w/])")


def mentioned_paths(text: str, known: set[str]) -> list[str]:
    """``@path`` mentions in a question that name files of the commit, in order, once each."""
    found: list[str] = []
    for match in _MENTION.finditer(text):
        path = match.group(1).removeprefix("./").lstrip("/")
        if path in known and path not in found:
            found.append(path)
    return found
