"""`qweb.ratelimit`: a fixed window per key in the shared cache.

The clock is fixed (the module's ``time``), so windows begin and end where a test says;
the counts are real, in the cache the settings name (Redis when REDIS_URL is set).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from qweb import ratelimit
from qweb.ratelimit import RateLimited, rate_limit

ROOT = Path(__file__).resolve().parents[1]
# A window boundary: a multiple of 10 and of 60 seconds, the windows used here.
WINDOW_START = 1_800_000.0


class _Clock:
    """Stands in for the ``time`` module inside ``qweb.ratelimit``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    fixed = _Clock(WINDOW_START)
    monkeypatch.setattr(ratelimit, "time", fixed)
    return fixed


def test_uses_up_to_the_count_pass_in_one_window(clock):
    for _ in range(3):
        rate_limit("user:1", count=3, seconds=60)


def test_the_next_use_is_refused_with_the_seconds_left_in_the_window(clock):
    for _ in range(3):
        rate_limit("user:1", count=3, seconds=60)
    clock.now = WINDOW_START + 12.5

    with pytest.raises(RateLimited) as refused:
        rate_limit("user:1", count=3, seconds=60)

    assert refused.value.retry_after == 48  # 47.5 s left, rounded up


def test_a_refusal_is_a_validation_error_naming_what_and_the_wait(clock):
    rate_limit("user:1", count=1, seconds=60)

    with pytest.raises(ValidationError) as refused:
        rate_limit("user:1", count=1, seconds=60, what="proposals")

    assert isinstance(refused.value, RateLimited)
    assert refused.value.code == "rate_limited"
    assert refused.value.messages == [
        "You are sending proposals too fast: wait 60 s and try again."
    ]


def test_the_wait_is_at_least_one_second_at_the_very_end_of_a_window(clock):
    rate_limit("user:1", count=1, seconds=60)
    clock.now = WINDOW_START + 59.999

    with pytest.raises(RateLimited) as refused:
        rate_limit("user:1", count=1, seconds=60)

    assert refused.value.retry_after == 1


def test_refused_uses_count_too_so_a_flood_stays_refused_until_the_window_ends(clock):
    rate_limit("user:1", count=1, seconds=60)
    for _ in range(5):
        with pytest.raises(RateLimited):
            rate_limit("user:1", count=1, seconds=60)

    clock.now = WINDOW_START + 60
    rate_limit("user:1", count=1, seconds=60)


def test_a_new_window_counts_afresh(clock):
    for _ in range(2):
        rate_limit("user:1", count=2, seconds=10)
    clock.now = WINDOW_START + 10

    for _ in range(2):
        rate_limit("user:1", count=2, seconds=10)
    with pytest.raises(RateLimited):
        rate_limit("user:1", count=2, seconds=10)


def test_each_key_has_its_own_count(clock):
    rate_limit("chat:1", count=1, seconds=60)

    rate_limit("chat:2", count=1, seconds=60)
    rate_limit("refactor:1", count=1, seconds=60)
    with pytest.raises(RateLimited):
        rate_limit("chat:1", count=1, seconds=60)


@pytest.mark.skipif(not settings.REDIS_URL, reason="one process's cache is not shared")
def test_uses_in_another_server_process_count_against_the_same_window(clock):
    # Another process, on the same Redis and prefix, with the same fixed clock.
    code = (
        "import django\n"
        "django.setup()\n"
        "from qweb import ratelimit\n"
        "class Clock:\n"
        f"    time = staticmethod(lambda: {WINDOW_START!r})\n"
        "ratelimit.time = Clock\n"
        "for _ in range(2):\n"
        "    ratelimit.rate_limit('shared:1', count=2, seconds=60)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)

    with pytest.raises(RateLimited):
        rate_limit("shared:1", count=2, seconds=60)
