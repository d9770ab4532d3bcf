"""The prompt of one turn with the model, packed within its context budget.

Chat questions and refactor proposals are both built here, next to the context builder
(`apps.repos.context`) that chooses their files. Layout (chat messages, rendered by the
tokenizer's own chat template):

1. **system**: the instructions (what the assistant is and must do, the repository and
   commit), the repository map outline, then the files — pinned ones whole, then the context
   builder's ranked files whole while they fit, then the best chunks of the next ones;
2. **history**: earlier questions and answers, newest kept whole, older ones shortened, the
   oldest left out when they no longer fit — always the same result for the same history, so
   asking again gives the same prompt;
3. **user**: the question.

``turn_prompt_build`` goes in four steps: the **budget** (the model's window —
``QWEB_CONTEXT_TOKENS``, else the model's own: its config, or what a remote server reports —
less the tokens reserved for the answer, then the history's share), **gather** (the pinned
files checked, the context builder's files and chunks read from git), **fit** (drop from the
least wanted end until the whole prompt, counted through the chat template where there is
one, fits) and the **manifest** stored with the answer, so the budget bar shows what the
model saw. Every part is counted with the model's tokenizer (`apps.repos.tokens`).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.generation import backends
from apps.repos.context import ContextError, RepoContext, context_build
from apps.repos.models import IndexedBlob, IndexedCommit, Repository
from apps.repos.tokens import token_counter, tokenizer_dir
from qweb.lib.codeindex.languages import detect_language
from qweb.lib.gitstore import GitStore

logger = logging.getLogger(__name__)

Count = Callable[[str], int]

# History may take up to this share of the budget; files get the rest.
HISTORY_SHARE = 0.25
SHORT_QUESTION_TOKENS = 150
SHORT_ANSWER_TOKENS = 300
# What the chat template adds per message (``<|im_start|>role\n`` … ``<|im_end|>\n``),
# used until the whole prompt is counted through the template itself.
MESSAGE_OVERHEAD = 6
# Room left between the fixed parts and the budget for the template's own framing.
FIXED_SLACK = 16
# What joining a file block onto the others costs, about (the blank lines between them).
PIECE_OVERHEAD = 4
SHORTENED = "\n[… shortened to fit the context budget …]"

SYSTEM_PROMPT = """\
You are qweb's assistant, a senior engineer answering questions about the repository \
"{name}" at commit {commit}. The repository map and the files below were selected from \
the repository for this question. Answer from them; name files with their paths \
(`path/to/file.py`) and say so when the files shown do not contain the answer instead of \
guessing. Write Markdown and put code in fenced blocks with a language."""


class PromptError(Exception):
    """The turn cannot be built (nothing indexed, pinned files over the budget, …)."""


@dataclass
class HistoryTurn:
    question: str
    answer: str


@dataclass
class TurnPrompt:
    messages: list[dict[str, str]]
    manifest: dict[str, Any]
    commit: str


# ---------------------------------------------------------------------------- counting


def context_window() -> int:
    """Tokens the model can take in one request; ``PromptError`` when that is not known."""
    try:
        return backends.context_window()
    except backends.WindowUnknown as error:
        raise PromptError(str(error)) from None


def answer_reserve(window: int, wanted: int | None = None) -> int:
    """Tokens kept free for the answer: the setting (or ``wanted``), at most half the window."""
    wanted = wanted or settings.QWEB_CHAT_ANSWER_TOKENS
    return max(1, min(wanted, settings.QWEB_MAX_NEW_TOKENS, window // 2))


@functools.cache
def _chat_tokenizer(model_dir: str) -> Any:
    """The model's tokenizer with its chat template, or None where it can't be loaded."""
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except Exception:  # not installed on this web node, no local model (remote backend), …
        logger.info("No chat template from %s; prompt sizes are summed per part", model_dir)
        return None
    return tokenizer if getattr(tokenizer, "chat_template", None) else None


def template_token_count(messages: list[dict[str, str]]) -> int | None:
    """Tokens of the whole prompt through the model's chat template; None without one."""
    directory = tokenizer_dir()
    tokenizer = _chat_tokenizer(str(directory)) if directory else None
    if tokenizer is None:
        return None
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)


# ---------------------------------------------------------------------------- history


def truncate_to_tokens(text: str, max_tokens: int, count: Count) -> str:
    """``text`` cut (at a line end where possible) to at most ``max_tokens``, marked as cut."""
    if count(text) <= max_tokens:
        return text
    keep = max(0, max_tokens - count(SHORTENED))
    cut = len(text)
    for _ in range(8):
        cut = int(cut * keep / max(1, count(text[:cut]))) if cut else 0
        newline = text.rfind("\n", 0, cut)
        if newline > cut * 0.7:
            cut = newline
        if count(text[:cut]) <= keep:
            break
    return text[:cut].rstrip() + SHORTENED


def _exchange(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _exchange_cost(exchange: list[dict[str, str]], count: Count) -> int:
    return sum(count(message["content"]) for message in exchange) + 2 * MESSAGE_OVERHEAD


def compact_history(
    turns: list[HistoryTurn], allowance: int, count: Count
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Earlier turns within ``allowance`` tokens: newest whole, then shortened, then dropped.

    Walks from the newest turn back; once a turn does not fit even shortened, it and every
    older turn are left out, so the history shown to the model has no holes.
    """
    kept: list[list[dict[str, str]]] = []
    stats = {"whole": 0, "shortened": 0, "omitted": 0, "tokens": 0}
    remaining = allowance
    for position, turn in enumerate(reversed(turns)):
        exchange = _exchange(turn.question, turn.answer)
        cost = _exchange_cost(exchange, count)
        kind = "whole"
        if cost > remaining:
            exchange = _exchange(
                truncate_to_tokens(turn.question, SHORT_QUESTION_TOKENS, count),
                truncate_to_tokens(turn.answer, SHORT_ANSWER_TOKENS, count),
            )
            cost = _exchange_cost(exchange, count)
            kind = "shortened"
            if cost > remaining:
                stats["omitted"] = len(turns) - position
                break
        kept.append(exchange)
        stats[kind] += 1
        remaining -= cost
        stats["tokens"] += cost
    messages = [message for exchange in reversed(kept) for message in exchange]
    return messages, stats


# ---------------------------------------------------------------------------- file blocks


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    return "`" * max(3, longest + 1)


def _file_block(path: str, text: str, lines: tuple[int, int] | None = None) -> str:
    language = (detect_language(path) or "").lower()
    fence = _fence(text)
    where = f" (lines {lines[0]}–{lines[1]})" if lines else ""
    return f"### {path}{where}\n{fence}{language}\n{text.rstrip()}\n{fence}"


@dataclass
class _Piece:
    """One file block of the system message: a whole file, or one chunk of a file."""

    path: str
    text: str
    tokens: int
    pinned: bool
    lines: tuple[int, int] | None


def _pieces(
    repository: Repository, indexed: IndexedCommit, found: RepoContext, count: Count
) -> list[_Piece]:
    """The files and chunks the context builder chose, read from git and rendered."""
    manifest = {path: blob for path, blob, _ in indexed.manifest}
    wanted = [item for item in found.files if item.included == "whole"]
    chunk_paths = sorted({chunk["path"] for chunk in found.chunks})
    shas = sorted({manifest[item.path] for item in wanted} | {manifest[p] for p in chunk_paths})
    contents = {
        sha: data.decode("utf-8", errors="replace")
        for sha, data in GitStore(repository.store_path).iter_blobs(shas)
    }
    pieces = []
    for item in wanted:
        text = _file_block(item.path, contents[manifest[item.path]])
        pieces.append(_Piece(item.path, text, count(text), item.pinned, None))
    for chunk in found.chunks:
        lines = contents[manifest[chunk["path"]]].splitlines()
        start, end = chunk["start_line"], chunk["end_line"]
        text = _file_block(chunk["path"], "\n".join(lines[start - 1 : end]), (start, end))
        pieces.append(_Piece(chunk["path"], text, count(text), False, (start, end)))
    return pieces


# ---------------------------------------------------------------------------- the turn


def _resolve_commit(repository: Repository, ref: str) -> IndexedCommit:
    store = GitStore(repository.store_path)
    sha = store.resolve_optional(ref) if ref else repository.head_sha
    if not sha:
        raise PromptError(f"{ref!r} is no longer a branch or commit of {repository.name}.")
    indexed = IndexedCommit.objects.filter(repository=repository, sha=sha).first()
    if indexed is None or indexed.state != IndexedCommit.State.READY:
        raise PromptError(
            f"Commit {sha[:12]} of {repository.name} is still being indexed; "
            "ask again when indexing has finished."
            if indexed is None or indexed.state in {"queued", "running"}
            else f"Commit {sha[:12]} of {repository.name} could not be indexed."
        )
    return indexed


@dataclass
class _Budget:
    """Where the turn's tokens go: the window, the answer's reserve and the fixed parts."""

    window: int
    reserve: int
    total: int  # the prompt's share of the window: window − reserve
    question: int  # the question's message, its framing included
    fixed: int  # the instructions, the question and the template's framing


@dataclass
class _Draft:
    """The parts of a turn's prompt; fitting drops pieces and the map until it fits."""

    system_head: str
    question: str
    history_messages: list[dict[str, str]]
    history_stats: dict[str, int]
    repo_map: str
    repo_map_tokens: int
    found: RepoContext
    chosen: list[_Piece] = field(default_factory=list)
    with_map: bool = False

    def messages(self) -> list[dict[str, str]]:
        parts = [self.system_head]
        if self.with_map and self.repo_map:
            parts.append(f"## Repository map\n{self.repo_map.rstrip()}")
        if self.chosen:
            parts.append("## Files\n\n" + "\n\n".join(piece.text for piece in self.chosen))
        omitted = self.history_stats["omitted"]
        if omitted:
            parts.append(f"({omitted} earlier turns of this conversation are left out.)")
        return [
            {"role": "system", "content": "\n\n".join(parts)},
            *self.history_messages,
            {"role": "user", "content": self.question},
        ]

    def map_tokens(self) -> int:
        return self.repo_map_tokens if self.with_map else 0

    def estimate(self, budget: _Budget) -> int:
        """The prompt's size summed per part, before the chat template counts it whole."""
        return (
            budget.fixed
            + self.history_stats["tokens"]
            + self.map_tokens()
            + sum(piece.tokens + PIECE_OVERHEAD for piece in self.chosen)
        )

    def drop_one(self) -> bool:
        """Remove the least wanted piece that is not pinned; False when only pinned remain."""
        for position in range(len(self.chosen) - 1, -1, -1):
            if not self.chosen[position].pinned:
                del self.chosen[position]
                return True
        return False


def _turn_budget(
    count: Count, system_head: str, question: str, answer_tokens: int | None
) -> _Budget:
    """Step 1: the window less the answer's reserve; refused if the question alone is over."""
    window = context_window()
    reserve = answer_reserve(window, answer_tokens)
    total = window - reserve
    question_tokens = count(question) + MESSAGE_OVERHEAD
    fixed = count(system_head) + MESSAGE_OVERHEAD + question_tokens + FIXED_SLACK
    if fixed > total:
        raise PromptError(
            f"The question alone needs about {fixed:,} tokens; the budget is {total:,}."
        )
    return _Budget(window, reserve, total, question_tokens, fixed)


def _check_pins(indexed: IndexedCommit, pinned: list[str], files_budget: int) -> None:
    """Pinned files must be in the commit and fit, whole, in what is left for files."""
    manifest_paths = {path: blob for path, blob, _ in indexed.manifest}
    unknown = [path for path in pinned if path not in manifest_paths]
    if unknown:
        raise PromptError(f"Pinned files not in commit {indexed.sha[:12]}: {', '.join(unknown)}.")
    pinned_tokens = dict(
        IndexedBlob.objects.filter(sha__in=[manifest_paths[p] for p in pinned]).values_list(
            "sha", "tokens"
        )
    )
    pinned_total = sum(pinned_tokens.get(manifest_paths[p], 0) for p in pinned)
    if pinned_total > files_budget:
        raise PromptError(
            f"The pinned files need {pinned_total:,} tokens but only {files_budget:,} are left "
            "for files in this turn: unpin some."
        )


def _gather(
    *,
    repository: Repository,
    indexed: IndexedCommit,
    system_head: str,
    question: str,
    history: list[HistoryTurn],
    pinned: list[str],
    budget: _Budget,
    count: Count,
) -> _Draft:
    """Step 2: the history within its share, then the files for what is left, as a draft."""
    history_messages, history_stats = compact_history(
        history, int((budget.total - budget.fixed) * HISTORY_SHARE), count
    )
    files_budget = budget.total - budget.fixed - history_stats["tokens"]
    _check_pins(indexed, pinned, files_budget)
    # Retrieval looks at this question and, less, the conversation's earlier questions.
    query = " ".join([question, *(turn.question for turn in history[-2:])])
    try:
        found = context_build(
            repository=repository,
            query=query,
            budget_tokens=files_budget,
            sha=indexed.sha,
            pinned=pinned,
        )
    except ContextError as error:
        raise PromptError(str(error)) from None
    repo_map = found.repo_map
    return _Draft(
        system_head=system_head,
        question=question,
        history_messages=history_messages,
        history_stats=history_stats,
        repo_map=repo_map,
        repo_map_tokens=count(repo_map) if repo_map else 0,
        found=found,
        chosen=_pieces(repository, indexed, found, count),
        with_map=bool(repo_map),
    )


def _fit(draft: _Draft, budget: _Budget) -> int | None:
    """Step 3: drop what fits least until the prompt fits; its size through the template.

    Drops from the least wanted end (chunks, then ranked files; pinned files stay, the map
    goes when files alone cannot make room) until the parts fit, then counts the real prompt
    through the chat template and trims again if the template adds more than estimated.
    Returns the template's count, or None where there is no template (the estimate stands).
    """
    for _ in range(len(draft.chosen) + 3):
        while draft.estimate(budget) > budget.total and draft.drop_one():
            pass
        if draft.estimate(budget) > budget.total and draft.with_map:
            draft.with_map = False
            continue
        exact = template_token_count(draft.messages())
        total = exact if exact is not None else draft.estimate(budget)
        if total <= budget.total:
            return exact
        if not draft.drop_one():
            if draft.with_map:
                draft.with_map = False
                continue
            raise PromptError(
                f"This turn needs {total:,} tokens even without files; "
                f"the budget is {budget.total:,}."
            )
    raise PromptError("The prompt could not be fitted into the budget.")  # pragma: no cover


def _manifest_files(draft: _Draft) -> list[dict[str, Any]]:
    """Every ranked file with what went in of it (whole, chunks and their lines, or no)."""
    included: dict[str, dict[str, Any]] = {}
    for piece in draft.chosen:
        entry = included.setdefault(
            piece.path,
            {
                "path": piece.path,
                "tokens": 0,
                "included": "whole",
                "lines": [],
                "pinned": piece.pinned,
            },
        )
        entry["tokens"] += piece.tokens
        if piece.lines:
            entry["included"] = "chunks"
            entry["lines"].append(list(piece.lines))
    files = []
    for item in draft.found.files:
        entry = included.get(item.path) or {
            "path": item.path,
            "tokens": item.tokens,
            "included": "no",
            "lines": [],
            "pinned": item.pinned,
        }
        files.append({**entry, "why": item.reasons})
    files.sort(key=lambda entry: entry["included"] == "no")
    return files


def _manifest(
    draft: _Draft, budget: _Budget, exact: int | None, counted_with: str, commit: str
) -> dict[str, Any]:
    """Step 4: what the turn holds and what each part cost, stored with the answer."""
    return {
        "commit": commit,
        "window": budget.window,
        "answer_tokens": budget.reserve,
        "budget": budget.total,
        "prompt_tokens": exact if exact is not None else draft.estimate(budget),
        "counted_with": "chat template" if exact is not None else counted_with,
        "parts": {
            "instructions": budget.fixed - budget.question,
            "repo_map": draft.map_tokens(),
            "files": sum(piece.tokens for piece in draft.chosen),
            "history": draft.history_stats["tokens"],
            "question": budget.question,
        },
        "history": draft.history_stats,
        "files": _manifest_files(draft),
        "query": draft.found.query,
    }


def turn_prompt_build(
    *,
    repository: Repository,
    ref: str,
    question: str,
    history: list[HistoryTurn],
    pinned: list[str],
    instructions: str = SYSTEM_PROMPT,
    answer_tokens: int | None = None,
) -> TurnPrompt:
    """Build the messages and manifest of one turn; raises ``PromptError`` with the reason.

    ``instructions`` is the system prompt's opening (``{name}`` and ``{commit}`` filled in);
    ``answer_tokens`` overrides the answer reserve (refactors need longer answers than chat).
    """
    counter = token_counter()
    indexed = _resolve_commit(repository, ref)
    system_head = instructions.format(name=repository.name, commit=indexed.sha[:12])
    budget = _turn_budget(counter.count, system_head, question, answer_tokens)
    draft = _gather(
        repository=repository,
        indexed=indexed,
        system_head=system_head,
        question=question,
        history=history,
        pinned=pinned,
        budget=budget,
        count=counter.count,
    )
    exact = _fit(draft, budget)
    manifest = _manifest(draft, budget, exact, counter.name, indexed.sha)
    return TurnPrompt(messages=draft.messages(), manifest=manifest, commit=indexed.sha)
