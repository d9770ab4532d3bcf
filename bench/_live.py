"""What the live benchmarks share: Redis, a database URL for subprocesses, Daphne, figures.

Used by ``bench/inference.py`` and ``bench/fanout.py``. Nothing here imports Django at module
level: the websocket client processes of both benchmarks import this module too.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAPHNE_APP = "qweb.asgi:application"


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentiles(values: list[float], points: tuple[int, ...] = (50, 90, 99)) -> dict[str, Any]:
    """``n``, the ``points`` percentiles, max and mean (linear interpolation between ranks)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        position = (len(ordered) - 1) * q
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    figures: dict[str, Any] = {"n": len(ordered)}
    for point in points:
        figures[f"p{point}"] = round(at(point / 100), 2)
    figures["max"] = round(ordered[-1], 2)
    figures["mean"] = round(statistics.fmean(ordered), 2)
    return figures


def check_redis(url: str, needed_by: str) -> str:
    """The Redis server's version; exits naming ``needed_by`` when Redis cannot be reached."""
    import redis

    try:
        info = redis.Redis.from_url(url, socket_timeout=3).info("server")
    except redis.RedisError as error:
        raise SystemExit(
            f"{needed_by} needs Redis at {url} (REDIS_URL) for the channel layer: {error}"
        ) from None
    return str(info.get("redis_version", "?"))


def cleanup_redis(url: str, prefix: str) -> int:
    """Delete the run's keys (channel layer and cache share ``prefix``); return how many."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=3)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def database_url(settings_dict: dict[str, Any]) -> str:
    """A PostgreSQL ``DATABASE_URL`` for the database ``settings_dict`` now names."""
    from urllib.parse import quote

    user = quote(settings_dict.get("USER") or "")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password)}" if password else user
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{settings_dict['NAME']}"


def session_cookie(user: Any) -> str:
    """A ``Cookie`` header value carrying a logged-in session of ``user``."""
    from django.conf import settings
    from django.test import Client

    browser = Client()
    browser.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={browser.cookies[name].value}"


def log_tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


def start_daphne(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, int]:
    """Daphne serving ``qweb.asgi`` on a free loopback port; returns once it listens."""
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), DAPHNE_APP],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(f"Daphne exited at start:\n{log_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"Daphne did not listen in 60 s:\n{log_tail(log_path)}") from None
            time.sleep(0.1)


def stop_process(process: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
    }
