from __future__ import annotations

import pytest

from tests.repos.conftest import shop_repository
from tests.sockets import sockets  # noqa: F401 - a fixture for the consumer tests


@pytest.fixture(autouse=True)
def chat_settings(settings, tmp_path, tiny_model_dir):
    """A data directory per test and the tiny model's tokenizer, window and chat template."""
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    settings.QWEB_MODEL_DIR = tiny_model_dir
    settings.QWEB_CONTEXT_TOKENS = 0
    settings.QWEB_CONTEXT_WINDOW = 0
    settings.QWEB_CHAT_ANSWER_TOKENS = 48
    settings.QWEB_CHAT_RATE_COUNT = 1000
    settings.QWEB_CHAT_RATE_SECONDS = 60
    return settings


@pytest.fixture
def shop(workspace, owner, tmp_path):
    """The small Django project of the repository tests, imported and indexed."""
    return shop_repository(workspace=workspace, user=owner, tmp_path=tmp_path)


@pytest.fixture
def membership_of(workspace):
    from apps.workspaces.models import Membership

    def find(user):
        return Membership.objects.get(workspace=workspace, user=user)

    return find


@pytest.fixture
def conversation(shop, owner, membership_of):
    from apps.chat.services import conversation_create

    return conversation_create(membership=membership_of(owner), repository=shop)


@pytest.fixture
def elsewhere_conversation(outsider, tmp_path):
    """A conversation in the outsider's own workspace, about the same project."""
    from apps.chat.services import conversation_create
    from apps.workspaces.models import Membership

    membership = Membership.objects.get(user=outsider)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    repository = shop_repository(workspace=membership.workspace, user=outsider, tmp_path=folder)
    return conversation_create(membership=membership, repository=repository)
