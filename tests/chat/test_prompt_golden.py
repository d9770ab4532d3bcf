"""Whole turn prompts pinned for fixed inputs: messages and manifest, byte for byte.

The stored snapshots were written from the prompt builder as it was before its steps were
split up; any change to what a turn sends the model shows here. Rewrite them on purpose
with ``QWEB_WRITE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from apps.chat.prompt import HistoryTurn, turn_prompt_build
from apps.repos import services as repo_services
from apps.repos.indexing import index_commit
from tests.repos.conftest import make_zip

GOLDEN = Path(__file__).parent / "golden" / "turn_prompts.json"

FEES = "\n\n".join(
    f"def fee_{n:03d}(amount):\n    rate = {n} / 1000\n    return amount * rate\n"
    for n in range(150)
)

HISTORY = [
    HistoryTurn(
        question=f"Question {n}: how does the receipt view load invoice {n}?",
        answer=f"Answer {n}. " + "The view reads the invoice and renders the template. " * 40,
    )
    for n in range(6)
]

REFACTOR_LIKE = (
    "You change the repository {name} at {commit}. Answer with SEARCH/REPLACE blocks."
    " Change only files under: orders."
)

CASES = {
    "shop-600-long-history": dict(window=600, history=HISTORY),
    "shop-400-drops-files": dict(window=400),
    "shop-2048-pinned-short-history": dict(
        window=2048,
        pinned=["docs/notes.txt"],
        history=[
            HistoryTurn(question="Where is Invoice?", answer="In `orders/models.py`."),
            HistoryTurn(question="And the receipt?", answer="`orders/views.py` renders it."),
        ],
    ),
    "shop-900-refactor-instructions": dict(
        window=900,
        pinned=["orders/models.py", "orders/views.py"],
        instructions=REFACTOR_LIKE,
        answer_tokens=200,
        question="Rename total_with_tax to total_including_tax everywhere.",
    ),
    "ledger-900-chunks": dict(window=900, repo="ledger", question="What does fee_042 compute?"),
}


class _FixedClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)


@pytest.fixture(autouse=True)
def fixed_commit_time(monkeypatch):
    """Commits made at one fixed time, so the sha (and its tokens) is the same every run."""
    monkeypatch.setattr("qweb.lib.gitstore.datetime", _FixedClock)


@pytest.fixture
def ledger(workspace, owner, tmp_path):
    archive = tmp_path / "ledger.zip"
    make_zip({"ledger/billing/fees.py": FEES, "ledger/README.md": "Fees.\n"}, archive)
    repository = repo_services.repository_import_archive(
        workspace=workspace, user=owner, name="Ledger", archive_path=archive, filename="l.zip"
    )
    index_commit(repository=repository, sha=repository.head_sha)
    return repository


def _snapshot(turn) -> dict:
    # The commit's sha changes with the import's time; everything else must not.
    text = json.dumps({"messages": turn.messages, "manifest": turn.manifest}, ensure_ascii=False)
    text = text.replace(turn.commit, "<sha>").replace(turn.commit[:12], "<sha12>")
    snapshot = json.loads(text)
    # The sha also depends on the committer (the factories' users differ with test order), and
    # its tokens with it: the counts that include it are checked against the budget instead.
    manifest = snapshot["manifest"]
    assert manifest["prompt_tokens"] <= manifest["budget"]
    manifest.pop("prompt_tokens")
    manifest["parts"].pop("instructions")
    # Symbol reasons follow a set's order (the hash seed): compare them as a set.
    for entry in snapshot["manifest"]["files"]:
        entry["why"] = sorted(entry["why"])
    return snapshot


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_turn_for_fixed_inputs_is_exactly_the_pinned_prompt(name, request, settings, db):
    case = dict(CASES[name])
    settings.QWEB_CONTEXT_TOKENS = case.pop("window")
    repository = request.getfixturevalue(case.pop("repo", "shop"))
    extra = {key: case.pop(key) for key in ("instructions", "answer_tokens") if key in case}

    turn = turn_prompt_build(
        repository=repository,
        ref=repository.default_branch,
        question=case.pop("question", "What does Invoice.total_with_tax return?"),
        history=list(case.pop("history", [])),
        pinned=list(case.pop("pinned", [])),
        **extra,
    )

    snapshot = _snapshot(turn)
    stored = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("QWEB_WRITE_GOLDEN"):
        stored[name] = snapshot
        GOLDEN.write_text(json.dumps(stored, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    assert snapshot == stored[name]
