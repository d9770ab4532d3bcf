"""Per-user limits on how often something may be done, shared by every server process.

A fixed window in the cache (Redis in a team deployment): simple, and enough to stop a
flood of posts without any state in the database.
"""

from __future__ import annotations

import math
import time

from django.core.cache import cache
from django.core.exceptions import ValidationError


class RateLimited(ValidationError):
    """Too many requests in the window; ``retry_after`` says how many seconds to wait."""

    def __init__(self, retry_after: int, what: str = "messages") -> None:
        self.retry_after = retry_after
        super().__init__(
            f"You are sending {what} too fast: wait {retry_after} s and try again.",
            code="rate_limited",
        )


def rate_limit(key: str, *, count: int, seconds: int, what: str = "messages") -> None:
    """Count one use of ``key``; raise ``RateLimited`` past ``count`` uses per window."""
    now = time.time()
    slot = int(now // seconds)
    cache_key = f"rate:{key}:{slot}"
    cache.add(cache_key, 0, seconds + 5)
    try:
        used = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, seconds + 5)
        used = 1
    if used > count:
        raise RateLimited(max(1, math.ceil((slot + 1) * seconds - now)), what)
