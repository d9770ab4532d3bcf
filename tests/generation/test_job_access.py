"""Jobs belong to their workspace: access needs the current membership, creator or not."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from apps.generation.events import job_group
from apps.generation.models import GenerationJob
from apps.generation.selectors import job_for_user
from apps.generation.services import job_submit
from apps.workspaces.models import Membership
from tests.factories import user_create
from tests.sockets import (
    REVOCATIONS,
    TIMEOUT,
    expect_nothing_more,
    expect_revoked,
    open_path,
    revoke_access,
    sockets,  # noqa: F401 - fixture
)

HELLO = [{"role": "user", "content": "Hello"}]


def test_the_creator_loses_a_job_with_the_membership(db, member, workspace):
    job = job_submit(messages=HELLO, workspace_id=workspace.pk, user_id=member.pk)
    assert job_for_user(user_id=member.pk, job_id=job.pk) == (job, True)

    Membership.objects.filter(user=member).delete()

    assert job_for_user(user_id=member.pk, job_id=job.pk) is None


def test_a_creator_made_viewer_may_watch_but_not_stop(db, member, workspace):
    job = job_submit(messages=HELLO, workspace_id=workspace.pk, user_id=member.pk)
    Membership.objects.filter(user=member).update(role="viewer")

    assert job_for_user(user_id=member.pk, job_id=job.pk) == (job, False)


def test_a_deactivated_creator_has_no_access(db, member, workspace):
    job = job_submit(messages=HELLO, workspace_id=workspace.pk, user_id=member.pk)
    member.is_active = False
    member.save()

    assert job_for_user(user_id=member.pk, job_id=job.pk) is None


def test_jobs_outside_any_workspace_are_for_active_staff_only(db, member):
    staff = user_create(email="ops@example.com")
    staff.is_staff = True
    staff.save()
    job = job_submit(messages=HELLO, user_id=member.pk)

    assert job_for_user(user_id=member.pk, job_id=job.pk) is None
    assert job_for_user(user_id=staff.pk, job_id=job.pk) == (job, True)


@pytest.mark.django_db(transaction=True)
async def test_a_removed_creator_can_neither_follow_nor_stop_their_job(member, workspace):
    job = await database_sync_to_async(job_submit)(
        messages=HELLO, workspace_id=workspace.pk, user_id=member.pk
    )
    await Membership.objects.filter(user=member).adelete()

    _socket, connected, code = await open_path(member, f"/ws/jobs/{job.pk}/")

    assert (connected, code) == (False, 4403)
    assert (await GenerationJob.objects.aget(pk=job.pk)).state == GenerationJob.State.QUEUED


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", REVOCATIONS)
async def test_a_job_socket_closes_when_access_goes(sockets, owner, member, workspace, how):  # noqa: F811
    job = await database_sync_to_async(job_submit)(
        messages=HELLO, workspace_id=workspace.pk, user_id=member.pk
    )
    socket, connected, _ = await open_path(member, f"/ws/jobs/{job.pk}/")
    assert connected
    sockets.append(socket)
    assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "job.snapshot"

    committed = await revoke_access(how, member, workspace)

    await expect_revoked(socket, committed)
    await expect_nothing_more(
        socket,
        (
            job_group(job.pk),
            {"type": "job.delta", "job_id": job.pk, "attempt": 0, "seq": 1, "text": "x"},
        ),
    )
    if how != "workspace_deleted":
        await socket.send_json_to({"type": "cancel"})
        assert await socket.receive_nothing(timeout=0.3)
        assert (await GenerationJob.objects.aget(pk=job.pk)).state == GenerationJob.State.QUEUED


@pytest.mark.django_db(transaction=True)
async def test_a_deeply_nested_frame_is_a_bad_frame(sockets, member, workspace):  # noqa: F811
    job = await database_sync_to_async(job_submit)(
        messages=HELLO, workspace_id=workspace.pk, user_id=member.pk
    )
    socket, connected, _ = await open_path(member, f"/ws/jobs/{job.pk}/")
    assert connected
    sockets.append(socket)
    await socket.receive_json_from(timeout=TIMEOUT)  # the snapshot

    await socket.send_to(text_data='{"type": "cancel", "x": ' + "[" * 100_000)

    answer = await socket.receive_json_from(timeout=TIMEOUT)
    assert (answer["type"], answer["code"]) == ("error", "bad_frame")
    assert (await GenerationJob.objects.aget(pk=job.pk)).state == GenerationJob.State.QUEUED
