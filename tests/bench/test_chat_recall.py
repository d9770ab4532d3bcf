"""The recall benchmark's questions are sound, and its scores are computed correctly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import django
import pytest

from bench.chat_recall import (
    SPLITS,
    WholeFileBM25,
    load_questions,
    mean_scores,
    plain_tokens,
    question_scores,
    ranks_of,
    report,
)

QUESTIONS = load_questions()


def test_there_are_at_least_thirty_questions_in_both_splits():
    assert len(QUESTIONS) >= 30
    splits = Counter(item["split"] for item in QUESTIONS)
    assert set(splits) == set(SPLITS)
    assert abs(splits["dev"] - splits["held-out"]) <= 1


def test_every_question_is_complete_and_none_is_repeated():
    for item in QUESTIONS:
        assert set(item) == {"id", "split", "question", "expected", "source"}
        assert item["question"].strip().endswith("?")
        assert item["expected"]
        assert len(set(item["expected"])) == len(item["expected"])
    assert len({item["id"] for item in QUESTIONS}) == len(QUESTIONS)
    assert len({item["question"].lower() for item in QUESTIONS}) == len(QUESTIONS)


def test_every_expected_file_exists_in_the_installed_django_package():
    root = Path(django.__file__).parent
    missing = [
        (item["id"], path)
        for item in QUESTIONS
        for path in item["expected"]
        if not (root / path).is_file() or path.startswith(("/", "django/"))
    ]
    assert missing == []


RANKING = ["a.py", "b.py", "c.py", "d.py", "e.py", "f.py", "g.py", "h.py", "i.py", "j.py", "k.py"]


def test_ranks_are_one_based_and_none_for_a_file_not_ranked():
    assert ranks_of(RANKING, ["c.py", "zzz.py", "a.py"]) == [3, None, 1]


@pytest.mark.parametrize(
    ("expected", "scores"),
    [
        (["a.py"], {"recall@5": 1.0, "recall@10": 1.0, "hit@5": 1.0, "mrr": 1.0}),
        (["b.py", "g.py"], {"recall@5": 0.5, "recall@10": 1.0, "hit@5": 1.0, "mrr": 0.5}),
        (["f.py", "k.py"], {"recall@5": 0.0, "recall@10": 0.5, "hit@5": 0.0, "mrr": 1 / 6}),
        (
            ["e.py", "x.py", "y.py", "z.py"],
            {"recall@5": 0.25, "recall@10": 0.25, "hit@5": 1.0, "mrr": 0.2},
        ),
        (["x.py"], {"recall@5": 0.0, "recall@10": 0.0, "hit@5": 0.0, "mrr": 0.0}),
    ],
)
def test_question_scores_count_expected_files_in_the_top_k(expected, scores):
    assert question_scores(RANKING, expected) == pytest.approx(scores)


def test_an_empty_ranking_scores_zero():
    assert question_scores([], ["a.py"]) == {
        "recall@5": 0.0,
        "recall@10": 0.0,
        "hit@5": 0.0,
        "mrr": 0.0,
    }


def test_scores_are_averaged_over_questions():
    rows = [{"recall@5": 1.0, "mrr": 0.5}, {"recall@5": 0.0, "mrr": 0.25}]
    assert mean_scores(rows) == {"recall@5": 0.5, "mrr": 0.375}


def test_the_report_gives_each_split_both_methods_and_their_difference():
    questions = [
        {"id": "one", "split": "dev", "question": "q1?", "expected": ["a.py"]},
        {"id": "two", "split": "held-out", "question": "q2?", "expected": ["b.py", "z.py"]},
    ]
    rankings = {
        "context": {"one": ["a.py"], "two": ["b.py", "z.py"]},
        "bm25": {"one": ["x.py", "a.py"], "two": []},
    }
    result = report(questions, rankings)
    summary = result["summary"]
    assert summary["all"]["questions"] == 2
    assert summary["all"]["context"]["recall@5"] == 1.0
    assert summary["all"]["bm25"]["recall@5"] == 0.5
    assert summary["all"]["context_minus_bm25"]["recall@5"] == 0.5
    assert summary["dev"]["bm25"]["mrr"] == 0.5
    assert summary["held-out"]["bm25"]["recall@10"] == 0.0
    assert result["questions"][1]["context_ranks"] == [1, 2]
    assert result["questions"][1]["bm25_ranks"] == [None, None]


def test_the_baseline_tokenizer_is_lowercase_word_characters():
    assert plain_tokens("How does get_user_model() find AUTH_USER_MODEL?") == [
        "how",
        "does",
        "get_user_model",
        "find",
        "auth_user_model",
    ]


def test_the_baseline_ranks_whole_files_by_bm25():
    baseline = WholeFileBM25(
        {
            "signing.py": "def unsign(value, max_age):\n    check the signature and its age\n",
            "cache.py": "def make_key(key, version):\n    return prefix + key\n",
            "empty.py": "",
        }
    )
    assert baseline.rank("Where is the signature age checked?") == ["signing.py"]
    assert baseline.rank("cache key version") == ["cache.py"]
    assert baseline.rank("kubernetes") == []
