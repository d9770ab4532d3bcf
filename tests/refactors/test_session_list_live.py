"""The refactor list updates live: its pages' workspace sockets hear when a session changes.

Committed data (``transaction=True``): events are sent after commit.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from apps.refactors import services
from apps.refactors.models import ProposalReview, RefactorPolicy
from tests.refactors.test_flow import RENAME
from tests.sockets import TIMEOUT, open_path, receive_until

pytestmark = pytest.mark.django_db(transaction=True)


async def workspace_socket(sockets, user, slug: str):
    socket, connected, detail = await open_path(user, f"/ws/w/{slug}/")
    assert connected, f"refused with {detail}"
    sockets.append(socket)
    return socket


def listed(session_id: int):
    return lambda frame: frame == {"type": "list.changed", "kind": "refactors", "id": session_id}


async def test_a_review_and_a_regenerate_reach_the_lists_open_pages(
    sockets, workspace, propose, owner, member, membership_of
):
    changeset = await database_sync_to_async(propose)(RENAME)
    await RefactorPolicy.objects.aupdate_or_create(
        workspace=workspace, defaults={"required_approvals": 1}
    )
    socket = await workspace_socket(sockets, member, workspace.slug)

    await database_sync_to_async(services.review_submit)(
        membership=await database_sync_to_async(membership_of)(member),
        changeset=changeset,
        state=ProposalReview.State.APPROVE,
    )
    await receive_until(socket, listed(changeset.session_id), timeout=TIMEOUT)

    await database_sync_to_async(services.refactor_regenerate)(
        membership=await database_sync_to_async(membership_of)(owner), session=changeset.session
    )
    await receive_until(socket, listed(changeset.session_id), timeout=TIMEOUT)
