from __future__ import annotations

import gc
import os

import pytest
from django.conf import settings

from tests.model_servers import model_list_server, remote_server  # noqa: F401 - fixtures
from tests.models import tiny_model_dir, transformers_serve  # noqa: F401 - shared fixtures


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI every service must be real and reachable: fail at once rather than skip."""
    if os.environ.get("QWEB_REQUIRE_SERVICES") != "1":
        return
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise pytest.UsageError(f"QWEB_REQUIRE_SERVICES=1 but the database engine is {engine}.")
    if not settings.REDIS_URL:
        raise pytest.UsageError("QWEB_REQUIRE_SERVICES=1 but REDIS_URL is not set.")
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL).ping()
    except redis.RedisError as exc:
        raise pytest.UsageError(f"Redis at {settings.REDIS_URL} does not answer: {exc}") from None


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test database, and no open connection left when it is dropped."""
    yield
    # A consumer's pool thread that has finished leaves its connection in a reference cycle,
    # open until the collector runs: PostgreSQL would wait 5 s for it, then refuse the drop
    # (and the next run would first have to drop the database it left).
    gc.collect()


# Django models are imported inside the fixtures, so the Django-free suites (tests/lib,
# tests/inference) also run with `-p no:django`.


@pytest.fixture
def workspace(db):
    from tests import factories

    return factories.workspace_create(name="Acme", slug="acme")


@pytest.fixture
def owner(workspace):
    from apps.workspaces.roles import Role
    from tests import factories

    return factories.membership_create(workspace=workspace, role=Role.OWNER).user


@pytest.fixture
def admin(workspace):
    from apps.workspaces.roles import Role
    from tests import factories

    return factories.membership_create(workspace=workspace, role=Role.ADMIN).user


@pytest.fixture
def member(workspace):
    from apps.workspaces.roles import Role
    from tests import factories

    return factories.membership_create(workspace=workspace, role=Role.MEMBER).user


@pytest.fixture
def viewer(workspace):
    from apps.workspaces.roles import Role
    from tests import factories

    return factories.membership_create(workspace=workspace, role=Role.VIEWER).user


@pytest.fixture
def outsider(db):
    """A signed-up user with a workspace of their own, but not in ``workspace``."""
    from apps.workspaces.roles import Role
    from tests import factories

    user = factories.user_create(email="outsider@example.com")
    factories.membership_create(
        workspace=factories.workspace_create(name="Elsewhere", slug="elsewhere"),
        user=user,
        role=Role.OWNER,
    )
    return user


@pytest.fixture
def users_by_role(owner, admin, member, viewer):
    from apps.workspaces.roles import Role

    return {Role.OWNER: owner, Role.ADMIN: admin, Role.MEMBER: member, Role.VIEWER: viewer}


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache (live tails, rate limits) whatever ran before."""
    if settings.configured:  # not under `-p no:django` (the Django-free suites)
        from django.core.cache import cache

        if settings.REDIS_URL:
            # Only this run's keys: clear() would flush the whole Redis database.
            import redis

            client = redis.Redis.from_url(settings.REDIS_URL)
            prefix = settings.CACHES["default"]["KEY_PREFIX"]
            for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                client.delete(key)
            client.close()
        else:
            cache.clear()
    yield
