"""The prompt of one chat turn, packed within the model's context budget.

Layout (chat messages, rendered by the tokenizer's own chat template):

1. **system**: what the assistant is and must do, the repository and commit, the repository
   map outline, then the files — pinned ones whole, then the context builder's ranked files
   whole while they fit, then the best chunks of the next ones;
2. **history**: earlier questions and answers of the conversation, newest kept whole,
   older ones shortened, the oldest left out when they no longer fit — always the same
   result for the same conversation, so asking again gives the same prompt;
3. **user**: the question.

The budget is the model's window (``QWEB_CONTEXT_TOKENS``, else the model's own: its config,
or what a remote server reports) less the tokens reserved for the answer. Every part is counted
with the model's tokenizer (`apps.repos.tokens`), and the whole prompt once more through the
chat template where there is one, so the budget bar shows what the model sees. The manifest
(``TurnPrompt.manifest``) is stored with the answer.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.generation import backends
from apps.repos.context import ContextError, RepoContext, context_build
from apps.repos.models import IndexedBlob, IndexedCommit, Repository
from apps.repos.tokens import token_counter, tokenizer_dir
from qweb.lib.codeindex.languages import detect_language
from qweb.lib.gitstore import GitStore

logger = logging.getLogger(__name__)

# History may take up to this share of the budget; files get the rest.
HISTORY_SHARE = 0.25
SHORT_QUESTION_TOKENS = 150
SHORT_ANSWER_TOKENS = 300
# What the chat template adds per message (``<|im_start|>role\n`` … ``<|im_end|>\n``),
# used until the whole prompt is counted through the template itself.
MESSAGE_OVERHEAD = 6
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


def truncate_to_tokens(text: str, max_tokens: int, count: Any) -> str:
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


def compact_history(
    turns: list[HistoryTurn], allowance: int, count: Any
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Earlier turns within ``allowance`` tokens: newest whole, then shortened, then dropped.

    Walks from the newest turn back; once a turn does not fit even shortened, it and every
    older turn are left out, so the history shown to the model has no holes.
    """
    kept: list[list[dict[str, str]]] = []
    stats = {"whole": 0, "shortened": 0, "omitted": 0, "tokens": 0}
    remaining = allowance
    for position, turn in enumerate(reversed(turns)):
        whole = [
            {"role": "user", "content": turn.question},
            {"role": "assistant", "content": turn.answer},
        ]
        cost = count(turn.question) + count(turn.answer) + 2 * MESSAGE_OVERHEAD
        if cost <= remaining:
            kept.append(whole)
            stats["whole"] += 1
        else:
            short = [
                {
                    "role": "user",
                    "content": truncate_to_tokens(turn.question, SHORT_QUESTION_TOKENS, count),
                },
                {
                    "role": "assistant",
                    "content": truncate_to_tokens(turn.answer, SHORT_ANSWER_TOKENS, count),
                },
            ]
            cost = sum(count(m["content"]) for m in short) + 2 * MESSAGE_OVERHEAD
            if cost > remaining:
                stats["omitted"] = len(turns) - position
                break
            kept.append(short)
            stats["shortened"] += 1
        remaining -= cost
        stats["tokens"] += cost
    messages = [message for pair in reversed(kept) for message in pair]
    return messages, stats


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
    path: str
    text: str
    tokens: int
    pinned: bool
    lines: tuple[int, int] | None


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
    count = counter.count
    indexed = _resolve_commit(repository, ref)
    window = context_window()
    reserve = answer_reserve(window, answer_tokens)
    budget = window - reserve

    system_head = instructions.format(name=repository.name, commit=indexed.sha[:12])
    question_tokens = count(question) + MESSAGE_OVERHEAD
    fixed = count(system_head) + MESSAGE_OVERHEAD + question_tokens + 16
    if fixed > budget:
        raise PromptError(
            f"The question alone needs about {fixed:,} tokens; the budget is {budget:,}."
        )
    history_messages, history_stats = compact_history(
        history, int((budget - fixed) * HISTORY_SHARE), count
    )
    files_budget = budget - fixed - history_stats["tokens"]

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

    pieces = _pieces(repository, indexed, found, count)
    repo_map = found.repo_map
    repo_map_tokens = count(repo_map) if repo_map else 0

    def assemble(chosen: list[_Piece], with_map: bool) -> list[dict[str, str]]:
        parts = [system_head]
        if with_map and repo_map:
            parts.append(f"## Repository map\n{repo_map.rstrip()}")
        if chosen:
            parts.append("## Files\n\n" + "\n\n".join(piece.text for piece in chosen))
        if history_stats["omitted"]:
            parts.append(
                f"({history_stats['omitted']} earlier turns of this conversation are left out.)"
            )
        return [
            {"role": "system", "content": "\n\n".join(parts)},
            *history_messages,
            {"role": "user", "content": question},
        ]

    # Drop from the least wanted end (chunks, then ranked files; pinned files stay) until
    # the parts fit, then count the real prompt through the chat template and trim again if
    # the template adds more than estimated.
    chosen = list(pieces)
    with_map = bool(repo_map)

    def estimate() -> int:
        return (
            fixed
            + history_stats["tokens"]
            + (repo_map_tokens if with_map else 0)
            + sum(piece.tokens + 4 for piece in chosen)
        )

    exact = None
    for _ in range(len(pieces) + 3):
        while estimate() > budget and _drop_one(chosen):
            pass
        if estimate() > budget and with_map:
            with_map = False
            continue
        messages = assemble(chosen, with_map)
        exact = template_token_count(messages)
        total = exact if exact is not None else estimate()
        if total <= budget:
            break
        if not _drop_one(chosen):
            if with_map:
                with_map = False
                continue
            raise PromptError(
                f"This turn needs {total:,} tokens even without files; the budget is {budget:,}."
            )
    else:  # pragma: no cover - the loop always ends by fitting or raising
        raise PromptError("The prompt could not be fitted into the budget.")

    prompt_tokens = exact if exact is not None else estimate()
    included: dict[str, dict[str, Any]] = {}
    for piece in chosen:
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
    reasons = {item.path: item.reasons for item in found.files}
    files = []
    for item in found.files:
        entry = included.get(item.path)
        if entry is None:
            files.append(
                {
                    "path": item.path,
                    "tokens": item.tokens,
                    "included": "no",
                    "lines": [],
                    "pinned": item.pinned,
                    "why": reasons[item.path],
                }
            )
        else:
            files.append({**entry, "why": reasons[item.path]})
    files.sort(key=lambda entry: entry["included"] == "no")
    manifest = {
        "commit": indexed.sha,
        "window": window,
        "answer_tokens": reserve,
        "budget": budget,
        "prompt_tokens": prompt_tokens,
        "counted_with": "chat template" if exact is not None else counter.name,
        "parts": {
            "instructions": fixed - question_tokens,
            "repo_map": repo_map_tokens if with_map else 0,
            "files": sum(piece.tokens for piece in chosen),
            "history": history_stats["tokens"],
            "question": question_tokens,
        },
        "history": history_stats,
        "files": files,
        "query": query,
    }
    return TurnPrompt(messages=assemble(chosen, with_map), manifest=manifest, commit=indexed.sha)


def _drop_one(chosen: list[_Piece]) -> bool:
    """Remove the least wanted piece that is not pinned; False when only pinned ones remain."""
    for position in range(len(chosen) - 1, -1, -1):
        if not chosen[position].pinned:
            del chosen[position]
            return True
    return False


def _pieces(
    repository: Repository, indexed: IndexedCommit, found: RepoContext, count: Any
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


def mentioned_paths(text: str, known: set[str]) -> list[str]:
    """``@path`` mentions in a question that name files of the commit, in order, once each."""
    found: list[str] = []
    for match in re.finditer(r"(?<![\w@])@([\w./\-]+[\w/])", text):
        path = match.group(1).removeprefix("./").lstrip("/")
        if path in known and path not in found:
            found.append(path)
    return found
