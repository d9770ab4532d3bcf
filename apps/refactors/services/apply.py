"""Accepted hunks applied as one commit on a branch (merged by git when it moved), and pushed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.ops.services import TaskError, task_enqueue
from apps.refactors.events import (
    ApplyFinished,
    session_group,
)
from apps.refactors.models import (
    Apply,
    ApplyTarget,
    ChangeSet,
    RefactorPolicy,
    RefactorSession,
)
from apps.refactors.selectors import accepted_hunks, policy_for
from apps.refactors.services.common import _git_failures_refused, _reviewable, _session_state
from apps.refactors.services.policy import (
    blocked_message,
    check_approvals,
    check_modes,
    findings_blocking,
)
from apps.repos.models import Repository
from apps.repos.services import repository_head_moved, repository_push
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.diffs import FileDiff, parse_diff
from qweb.lib.gitident import git_identity
from qweb.lib.gitstore import GitStore, GitStoreError
from qweb.realtime import broadcast


def _accepted_patch(
    store: GitStore, changeset: ChangeSet, accepted: dict[str, list[int] | None]
) -> tuple[str, list[FileDiff]]:
    session = changeset.session
    paths: list[str] = []
    for item in changeset.files:
        if item["path"] in accepted:
            paths.extend({item["path"], item["old_path"]})
    diff = parse_diff(store.diff(session.base_commit, changeset.commit, paths=sorted(set(paths))))
    patches = []
    chosen = []
    for item in diff:
        if item.path not in accepted:
            continue
        chosen.append(item)
        patches.append(item.patch(accepted[item.path]))
    return "".join(patches), chosen


@dataclass(frozen=True)
class _Plan:
    """What an apply will do, read before any git work: the proposal, branch and hunks."""

    changeset: ChangeSet
    branch: str
    accepted: dict[str, list[int] | None]
    # The accepted hunks and the target, hashed: the same apply twice is done once.
    fingerprint: str

    @property
    def session(self) -> RefactorSession:
        return self.changeset.session


@dataclass(frozen=True)
class _Written:
    """The commit git wrote for an apply (no ref moved yet), or the files that conflict."""

    message: str
    head: str | None  # the target branch's head it was written on (None: a new branch)
    result: str = ""
    conflicts: list[str] = field(default_factory=list)


@_git_failures_refused
def changeset_apply(
    *,
    membership: Membership,
    changeset: ChangeSet,
    target: str = ApplyTarget.BRANCH,
    site_url: str | None = None,
) -> Apply:
    """Commit the accepted hunks on ``qweb/refactor-<id>`` (``target="branch"``) or the base.

    The commit message links to the session at ``site_url`` (``QWEB_SITE_URL`` by default;
    a view passes the address the request came to when that is unset).

    A 3-way merge by git when the branch moved since the base commit; on conflicts an
    ``Apply`` in state ``conflict`` lists the files and no ref moves. Applying the same
    accepted hunks to the same target again returns the first result (a double click applies
    once). No row lock is held while git works: the branch moves by compare-and-swap (from
    the head the commit was written on), and only the bookkeeping after it locks the row.
    """
    ensure_can(membership, Action.APPLY_CHANGES)
    if target not in ApplyTarget.values:
        raise ValidationError({"target": "Apply to a new branch or to the base branch."})
    plan = _plan(membership, changeset, ApplyTarget(target))
    done = _applied_before(plan)
    if done is not None:
        return done
    policy = policy_for(plan.session.workspace_id)
    check_approvals(plan.changeset, policy)
    blocking = findings_blocking(plan.changeset, plan.accepted, policy)
    if blocking:
        return _record(plan, membership, Apply.State.BLOCKED, message=blocked_message(blocking))
    store = GitStore(plan.session.repository.store_path)
    site = settings.SITE_URL if site_url is None else site_url
    written = _write_commit(store, plan, membership, policy, site)
    if written.conflicts:
        count = len(written.conflicts)
        return _record(
            plan,
            membership,
            Apply.State.CONFLICT,
            branch_head=written.head or "",
            conflicts=written.conflicts,
            message=f"{plan.branch} moved since the base commit and "
            f"{count} file{'s' if count != 1 else ''} conflict.",
        )
    # Again after git's work (no ref moved yet): a request for changes made meanwhile holds.
    check_approvals(plan.changeset, policy)
    return _land(store, plan, membership, written)


def _plan(membership: Membership, changeset: ChangeSet, target: ApplyTarget) -> _Plan:
    fresh = ChangeSet.objects.select_related("session__repository", "session__workspace").get(
        pk=changeset.pk
    )
    _reviewable(fresh)
    session = fresh.session
    if session.workspace_id != membership.workspace_id:
        raise PermissionDenied("This proposal belongs to another workspace.")
    accepted = accepted_hunks(fresh)
    if not accepted:
        raise ValidationError("Accept at least one change before applying.")
    branch = session.branch_name if target == ApplyTarget.BRANCH else session.base_branch
    fingerprint = hashlib.sha256(
        repr((fresh.commit, branch, sorted((p, h) for p, h in accepted.items()))).encode()
    ).hexdigest()
    return _Plan(changeset=fresh, branch=branch, accepted=accepted, fingerprint=fingerprint)


def _applied_before(plan: _Plan) -> Apply | None:
    return plan.changeset.applies.filter(
        state=Apply.State.APPLIED, fingerprint=plan.fingerprint
    ).first()


def _record(plan: _Plan, membership: Membership, state: str, **fields: Any) -> Apply:
    return Apply.objects.create(
        changeset=plan.changeset,
        applied_by_id=membership.user_id,
        target_branch=plan.branch,
        base_commit=plan.session.base_commit,
        fingerprint=plan.fingerprint,
        state=state,
        **fields,
    )


def _write_commit(
    store: GitStore, plan: _Plan, membership: Membership, policy: RefactorPolicy, site: str
) -> _Written:
    """The accepted hunks as a commit on the base, merged onto the branch if it moved."""
    session = plan.session
    patch, files = _accepted_patch(store, plan.changeset, plan.accepted)
    check_modes(files, policy)
    try:
        tree = store.apply_patch(session.base_commit, patch.encode("utf-8"))
    except GitStoreError as error:
        raise ValidationError(str(error)) from None
    user = membership.user
    message = _commit_message(session, plan.changeset, user, site)
    author = git_identity(user.name, user.email)
    identity = {"author_name": author.name, "author_email": author.email}
    applied = store.commit_tree(tree, parents=[session.base_commit], message=message, **identity)
    head = store.resolve_optional(f"refs/heads/{plan.branch}")
    if head is None or head == session.base_commit:
        return _Written(message=message, head=head, result=applied)
    merged, conflicts = store.merge(head, applied)
    if merged is None:
        return _Written(message=message, head=head, conflicts=conflicts)
    if merged == store.tree_of(head):
        # The branch has these changes already (an apply of the same hunks just landed):
        # nothing to commit, and the branch stays where it is.
        return _Written(message=message, head=head, result=head)
    result = store.commit_tree(merged, parents=[head], message=message, **identity)
    return _Written(message=message, head=head, result=result)


def _land(store: GitStore, plan: _Plan, membership: Membership, written: _Written) -> Apply:
    """Move the branch to the new commit if it is still where the commit was written; record it."""
    unchanged = written.result == written.head
    if not unchanged:
        patch_sha256 = hashlib.sha256(store.format_patch(written.result)).hexdigest()
        moved = store.update_ref(f"refs/heads/{plan.branch}", written.result, written.head)
    session = plan.session
    with transaction.atomic():
        # Serializes the bookkeeping of two applies of one proposal, never their git work.
        ChangeSet.objects.select_for_update().filter(pk=plan.changeset.pk).first()
        if unchanged or not moved:
            # An apply of the same hunks that finished first (a double click) moved the
            # branch: its result.
            done = _applied_before(plan)
            if done is not None:
                return done
            if unchanged:
                raise ValidationError(f"{plan.branch} already has these changes.")
            raise ValidationError(f"{plan.branch} moved while applying; apply again.")
        record = _record(
            plan,
            membership,
            Apply.State.APPLIED,
            branch_head=written.head or "",
            result_commit=written.result,
            patch_sha256=patch_sha256,
            message=written.message,
        )
        _session_state(session.pk, RefactorSession.State.APPLIED)
        if plan.branch == session.repository.default_branch:
            repository_head_moved(repository=session.repository, sha=written.result)
        broadcast(
            session_group(session.pk),
            ApplyFinished(
                type="apply.finished",
                session_id=session.pk,
                changeset_id=plan.changeset.pk,
                apply_id=record.pk,
                state=record.state,
                branch=plan.branch,
                commit=written.result,
            ),
        )
    return record


def apply_push_enqueue(*, membership: Membership, record: Apply) -> None:
    """Queue the push of an applied branch to the cloned repository's origin."""
    ensure_can(membership, Action.APPLY_CHANGES)
    session = record.changeset.session
    if session.workspace_id != membership.workspace_id:
        raise PermissionDenied("This apply belongs to another workspace.")
    if record.state != Apply.State.APPLIED:
        raise ValidationError("Only an applied change can be pushed.")
    if session.repository.source != Repository.Source.CLONE:
        raise ValidationError("This repository was uploaded: there is no remote to push to.")
    if not policy_for(session.workspace_id).allow_push:
        raise ValidationError("An admin must allow pushing in the refactor policy first.")
    task_enqueue(
        kind="refactor.push",
        payload={"apply_id": record.pk},
        workspace_id=session.workspace_id,
        created_by_id=membership.user_id,
    )


def apply_push(*, apply_id: int) -> Apply:
    """Push an applied branch (the task's work); the outcome is stored on the apply."""
    record = Apply.objects.select_related("changeset__session__repository").get(pk=apply_id)
    try:
        repository_push(
            repository=record.changeset.session.repository,
            commit=record.result_commit,
            branch=record.target_branch,
        )
    except TaskError as error:
        record.push_error = str(error)
        record.save(update_fields=["push_error"])
        raise
    record.pushed_at = timezone.now()
    record.push_error = ""
    record.save(update_fields=["pushed_at", "push_error"])
    return record


def _commit_message(session: RefactorSession, changeset: ChangeSet, user: Any, site: str) -> str:
    link = reverse("refactors:detail", args=[session.workspace.slug, session.pk])
    return (
        f"{session.title}\n\n{session.instruction}\n\n"
        f"Proposed by the model in qweb refactor session {session.pk} (proposal "
        f"{changeset.number}), reviewed and applied by {user.display_name or user.email}.\n"
        f"{site}{link}\n"
    )
