"""Helpers for tests that start qweb processes against the test database."""

from __future__ import annotations

from django.db import connection


def subprocess_database_url() -> str:
    """A DATABASE_URL naming the test database, for a server or worker subprocess."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    return f"postgres://{auth}{host}:{db.get('PORT') or 5432}/{db['NAME']}"
