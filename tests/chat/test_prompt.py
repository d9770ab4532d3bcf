"""A chat turn's prompt: packed within the budget, counted through the chat template."""

from __future__ import annotations

import random

import pytest

from apps.chat.prompt import (
    SHORTENED,
    HistoryTurn,
    PromptError,
    compact_history,
    mentioned_paths,
    template_token_count,
    truncate_to_tokens,
    turn_prompt_build,
)
from apps.repos import services as repo_services
from apps.repos.indexing import index_commit
from apps.repos.models import IndexedCommit
from apps.repos.tokens import token_counter
from tests.repos.conftest import SHOP, make_zip

QUESTION = "What does Invoice.total_with_tax return?"


def _words(text: str) -> int:
    return len(text.split())


def _build(repository, question=QUESTION, history=(), pinned=()):
    return turn_prompt_build(
        repository=repository,
        ref=repository.default_branch,
        question=question,
        history=list(history),
        pinned=list(pinned),
    )


def _long_history(turns: int = 6) -> list[HistoryTurn]:
    return [
        HistoryTurn(
            question=f"Question {n}: how does the receipt view load invoice {n}?",
            answer=f"Answer {n}. " + "The view reads the invoice and renders the template. " * 40,
        )
        for n in range(turns)
    ]


FEES = "\n\n".join(
    f"def fee_{n:03d}(amount):\n    rate = {n} / 1000\n    return amount * rate\n"
    for n in range(150)
)


@pytest.fixture
def ledger(workspace, owner, tmp_path):
    """A repository with one file far bigger than a small budget, made of small functions."""
    archive = tmp_path / "ledger.zip"
    make_zip({"ledger/billing/fees.py": FEES, "ledger/README.md": "Fees.\n"}, archive)
    repository = repo_services.repository_import_archive(
        workspace=workspace, user=owner, name="Ledger", archive_path=archive, filename="l.zip"
    )
    index_commit(repository=repository, sha=repository.head_sha)
    return repository


# The budget ------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [600, 900, 2048])
def test_the_prompt_counted_through_the_chat_template_fits_the_budget(shop, settings, window):
    settings.QWEB_CONTEXT_TOKENS = window

    turn = _build(shop, history=_long_history())

    manifest = turn.manifest
    assert manifest["window"] == window
    assert manifest["answer_tokens"] == 48
    assert manifest["budget"] == window - 48
    assert manifest["counted_with"] == "chat template"
    exact = template_token_count(turn.messages)
    assert exact == manifest["prompt_tokens"]
    assert exact <= manifest["budget"]


def test_the_turn_is_system_then_history_then_the_question(shop):
    history = [
        HistoryTurn(question="Where is Invoice?", answer="In `orders/models.py`."),
        HistoryTurn(question="And the receipt?", answer="`orders/views.py` renders it."),
    ]

    turn = _build(shop, history=history)

    assert [m["role"] for m in turn.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert turn.messages[1]["content"] == history[0].question
    assert turn.messages[-1]["content"] == QUESTION
    assert turn.commit == shop.head_sha
    assert 'repository "Shop"' in turn.messages[0]["content"]


def test_the_answer_reserve_is_at_most_half_the_window(shop, settings):
    settings.QWEB_CONTEXT_TOKENS = 600
    settings.QWEB_CHAT_ANSWER_TOKENS = 5000

    turn = _build(shop)

    assert turn.manifest["answer_tokens"] == 300
    assert turn.manifest["budget"] == 300
    assert turn.manifest["prompt_tokens"] <= 300


def test_pinned_files_over_the_budget_are_refused_with_advice_to_unpin(shop, settings):
    settings.QWEB_CONTEXT_TOKENS = 400
    every_file = [
        "manage.py",
        "shop/settings.py",
        "shop/urls.py",
        "orders/apps.py",
        "orders/models.py",
        "orders/urls.py",
        "orders/views.py",
        "orders/templates/orders/receipt.html",
        "docs/notes.txt",
    ]

    with pytest.raises(PromptError, match="unpin some"):
        _build(shop, pinned=every_file)


def test_a_pinned_file_goes_in_whole_and_is_marked_pinned(shop, settings):
    settings.QWEB_CONTEXT_TOKENS = 600

    turn = _build(shop, pinned=["docs/notes.txt"])

    system = turn.messages[0]["content"]
    assert (
        "### docs/notes.txt\n```text\nNothing about receipts here, only deployment notes.\n```"
        in (system)
    )
    entry = next(f for f in turn.manifest["files"] if f["path"] == "docs/notes.txt")
    assert (entry["included"], entry["pinned"], entry["why"][0]) == ("whole", True, "pinned")


def test_a_question_too_long_for_the_budget_is_refused(shop, settings):
    settings.QWEB_CONTEXT_TOKENS = 400

    with pytest.raises(PromptError, match="The question alone needs about"):
        _build(shop, question="invoice " * 400)


# The manifest ----------------------------------------------------------------------------------


def test_the_manifest_lists_each_file_with_tokens_inclusion_and_reasons(shop, settings):
    settings.QWEB_CONTEXT_TOKENS = 400  # room for orders/models.py, not for the rest

    turn = _build(shop)

    files = {entry["path"]: entry for entry in turn.manifest["files"]}
    system = turn.messages[0]["content"]
    assert files["orders/models.py"]["included"] == "whole"
    assert any(
        why.startswith("symbol: defines total_with_tax") for why in files["orders/models.py"]["why"]
    )
    assert "### orders/models.py\n```python\n" in system
    left_out = [entry for entry in files.values() if entry["included"] == "no"]
    assert left_out, "a 400-token window leaves some ranked files out"
    for entry in files.values():
        assert entry["tokens"] > 0
        assert entry["why"]
        assert entry["included"] in {"whole", "chunks", "no"}
    for entry in left_out:
        assert f"### {entry['path']}" not in system
    # Files that went in are listed before those that did not.
    included = [entry["included"] != "no" for entry in turn.manifest["files"]]
    assert included == sorted(included, reverse=True)
    parts = turn.manifest["parts"]
    assert parts["files"] == sum(e["tokens"] for e in files.values() if e["included"] != "no")


def test_a_file_too_big_for_the_budget_goes_in_as_its_best_chunks(ledger, settings):
    settings.QWEB_CONTEXT_TOKENS = 900

    turn = _build(ledger, question="What does fee_042 compute?")

    entry = next(f for f in turn.manifest["files"] if f["path"] == "billing/fees.py")
    assert entry["included"] == "chunks"
    assert entry["lines"]
    files_section = turn.messages[0]["content"].split("## Files\n", 1)[1]
    lines = FEES.splitlines()
    for start, end in entry["lines"]:
        shown = "\n".join(lines[start - 1 : end]).rstrip()
        assert f"### billing/fees.py (lines {start}–{end})\n```python\n{shown}\n```" in (
            files_section
        )
    assert files_section.count("def fee_") < 150
    assert template_token_count(turn.messages) == turn.manifest["prompt_tokens"] <= 852


def test_a_commit_being_indexed_is_refused_with_the_reason(workspace, owner, tmp_path):
    archive = tmp_path / "p.zip"
    make_zip(SHOP, archive)
    repository = repo_services.repository_import_archive(
        workspace=workspace, user=owner, name="Fresh", archive_path=archive, filename="p.zip"
    )

    with pytest.raises(PromptError, match="is still being indexed"):
        _build(repository)


def test_a_commit_whose_indexing_failed_is_refused_with_the_reason(shop):
    IndexedCommit.objects.filter(repository=shop).update(state=IndexedCommit.State.FAILED)

    with pytest.raises(PromptError, match="could not be indexed"):
        _build(shop)


# History ---------------------------------------------------------------------------------------


def test_history_keeps_the_newest_turn_whole_shortens_older_and_omits_the_oldest():
    turns = [
        HistoryTurn(question=f"question {n}", answer=" ".join(["word"] * 1000) + f" end{n}")
        for n in range(5)
    ]

    messages, stats = compact_history(turns, 1500, _words)

    assert stats == {"whole": 1, "shortened": 1, "omitted": 3, "tokens": stats["tokens"]}
    assert stats["tokens"] <= 1500
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == "question 3"
    assert messages[1]["content"].endswith(SHORTENED)
    assert _words(messages[1]["content"]) <= 300
    assert messages[2:] == [
        {"role": "user", "content": "question 4"},
        {"role": "assistant", "content": turns[4].answer},
    ]


def test_history_compaction_gives_the_same_result_for_the_same_turns():
    count = token_counter().count
    turns = _long_history(8)

    first = compact_history(turns, 700, count)
    second = compact_history(list(turns), 700, count)

    assert first == second
    assert first[1]["omitted"] > 0


def test_history_that_fits_is_kept_whole():
    turns = [HistoryTurn(question="q1", answer="a1"), HistoryTurn(question="q2", answer="a2")]

    messages, stats = compact_history(turns, 1000, _words)

    assert [m["content"] for m in messages] == ["q1", "a1", "q2", "a2"]
    assert (stats["whole"], stats["shortened"], stats["omitted"]) == (2, 0, 0)


def test_no_allowance_leaves_every_turn_out():
    messages, stats = compact_history(_long_history(3), 0, _words)

    assert messages == []
    assert stats == {"whole": 0, "shortened": 0, "omitted": 3, "tokens": 0}


def test_a_turn_with_omitted_history_says_so_in_the_system_prompt(shop, settings):
    settings.QWEB_CONTEXT_TOKENS = 600

    turn = _build(shop, history=_long_history(6))

    omitted = turn.manifest["history"]["omitted"]
    assert omitted > 0
    assert (
        f"({omitted} earlier turns of this conversation are left out.)"
        in (turn.messages[0]["content"])
    )
    assert len(turn.messages) == 2 + 2 * (6 - omitted)


# Truncation ------------------------------------------------------------------------------------


def _sample_texts() -> list[str]:
    rng = random.Random(7)
    words = ["invoice", "receipt", "def", "return", "😀", "数据", "\n", "    ", "x" * 30, "{}"]
    texts = [
        "\n".join(f"line {n}: " + "token " * (n % 13) for n in range(400)),
        "no newlines at all " * 500,
        "数据库连接" * 800,
        "x" * 5000,
    ]
    for _ in range(20):
        texts.append(" ".join(rng.choice(words) for _ in range(rng.randint(50, 3000))))
    return texts


# Limits from the marker's own size up: below it, only the marker would be left.
@pytest.mark.parametrize("limit", [30, 64, 150, 300, 1000])
def test_truncation_never_exceeds_the_limit(settings, tiny_model_dir, limit):
    settings.QWEB_MODEL_DIR = tiny_model_dir
    count = token_counter().count
    for text in _sample_texts():
        cut = truncate_to_tokens(text, limit, count)
        assert count(cut) <= limit
        if count(text) <= limit:
            assert cut == text
        else:
            assert cut.endswith(SHORTENED)
            assert text.startswith(cut.removesuffix(SHORTENED))


def test_truncation_prefers_to_cut_at_a_line_end():
    text = "\n".join(f"line {n} has five words" for n in range(100))

    cut = truncate_to_tokens(text, 60, _words)

    assert cut.removesuffix(SHORTENED).endswith("five words")
    assert _words(cut) <= 60


# Mentions --------------------------------------------------------------------------------------

KNOWN = {"orders/models.py", "orders/views.py", "b.py", "docs/notes.txt", ".github/ci.yml"}


def test_mentions_pick_known_paths_once_each_in_order():
    text = (
        "Compare @orders/views.py with @orders/models.py, then @orders/views.py again; "
        "see @./docs/notes.txt. Not @missing.py nor @orders."
    )

    assert mentioned_paths(text, KNOWN) == ["orders/views.py", "orders/models.py", "docs/notes.txt"]


@pytest.mark.parametrize(
    "text", ["mail a@b.py about it", "write to me@b.py.", "@@b.py", "orders/models.py alone"]
)
def test_e_mail_addresses_and_bare_paths_are_not_mentions(text):
    assert mentioned_paths(text, KNOWN) == []


def test_a_mention_of_a_dotfile_path_is_found():
    assert mentioned_paths("What does @.github/ci.yml run?", KNOWN) == [".github/ci.yml"]
