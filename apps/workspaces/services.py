"""Writes for workspaces, memberships and invitations.

Every rule lives here once; views, websocket consumers, the API and the CLI call these.
Bad input raises ``ValidationError`` and a forbidden action ``PermissionDenied``; either way
nothing is saved.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.accounts.models import User
from apps.workspaces.events import (
    MemberJoined,
    MemberRemoved,
    MemberRoleChanged,
    workspace_broadcast,
)
from apps.workspaces.models import RESERVED_SLUGS, Invitation, Membership, Workspace
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action, Role, assignable_roles, may_manage


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _clean_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationError({"role": f"{role!r} is not a role."}) from None


def workspace_create(*, user: User, name: str, slug: str) -> Workspace:
    """Create a workspace with ``user`` as its owner."""
    slug = slug.strip().lower()
    workspace = Workspace(name=name.strip(), slug=slug, created_by=user)
    workspace.full_clean()
    if slug in RESERVED_SLUGS:
        raise ValidationError({"slug": "That address is reserved; choose another."})
    try:
        with transaction.atomic():
            workspace.save()
            Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    except IntegrityError:
        # Lost a race with another request taking the same slug.
        raise ValidationError({"slug": "That address is taken by another workspace."}) from None
    return workspace


def workspace_rename(*, actor: Membership, name: str) -> Workspace:
    """Change the workspace's display name (owners only)."""
    ensure_can(actor, Action.MANAGE_WORKSPACE)
    workspace = actor.workspace
    workspace.name = name.strip()
    workspace.full_clean(exclude=["slug", "created_by"])
    workspace.save(update_fields=["name"])
    return workspace


def workspace_delete(*, actor: Membership, confirm_slug: str) -> None:
    """Delete the workspace and everything in it (owners only, slug typed to confirm)."""
    ensure_can(actor, Action.MANAGE_WORKSPACE)
    if confirm_slug.strip() != actor.workspace.slug:
        raise ValidationError({"confirm_slug": "Type the workspace's address exactly to confirm."})
    actor.workspace.delete()


def invitation_create(
    *, actor: Membership, email: str, role: str = Role.MEMBER, base_url: str = ""
) -> tuple[Invitation, str]:
    """Invite ``email`` with ``role``; returns the invitation and its one-time link token.

    An earlier pending invitation of the same address is revoked, so only the newest link works.
    """
    ensure_can(actor, Action.MANAGE_MEMBERS)
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": f"{email!r} is not a valid e-mail address."}) from None
    wanted = _clean_role(role)
    if wanted not in assignable_roles(actor.role):
        raise PermissionDenied(f"A {actor.get_role_display()} cannot invite {wanted.label}s.")
    workspace = actor.workspace
    if workspace.memberships.filter(user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member of {workspace.name}."})

    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        workspace.invitations.pending().filter(email__iexact=email).update(revoked_at=now)
        invitation = Invitation.objects.create(
            workspace=workspace,
            email=email,
            role=wanted,
            token_hash=_hash_token(token),
            invited_by=actor.user,
            created_at=now,
            expires_at=now + timedelta(days=settings.QWEB_INVITATION_DAYS),
        )
        link = f"{base_url}/invitations/{token}/"
        transaction.on_commit(lambda: _send_invitation_email(invitation, link))
    return invitation, token


def _send_invitation_email(invitation: Invitation, link: str) -> None:
    context = {"invitation": invitation, "link": link}
    send_mail(
        subject=f"You are invited to {invitation.workspace.name} on qweb",
        message=render_to_string("workspaces/email/invitation.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
        fail_silently=False,
    )


def invitation_revoke(*, actor: Membership, invitation_id: int) -> Invitation:
    """Withdraw a pending invitation so its link stops working."""
    ensure_can(actor, Action.MANAGE_MEMBERS)
    invitation = actor.workspace.invitations.pending().filter(id=invitation_id).first()
    if invitation is None:
        raise ValidationError("That invitation is no longer pending.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    return invitation


def invitation_get_by_token(*, token: str) -> Invitation | None:
    """The invitation behind a link token, in any state, or None for an unknown token."""
    if not token or len(token) > 128:
        return None
    return (
        Invitation.objects.select_related("workspace", "invited_by")
        .filter(token_hash=_hash_token(token))
        .first()
    )


def _usable_invitation(token: str) -> Invitation:
    invitation = invitation_get_by_token(token=token)
    if invitation is None:
        raise ValidationError("This invitation link is not valid.")
    # Lock the row so two simultaneous acceptances cannot both use one link.
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    state = invitation.state
    if state == "accepted":
        raise ValidationError("This invitation has already been used.")
    if state == "revoked":
        raise ValidationError("This invitation was withdrawn. Ask for a new one.")
    if state == "expired":
        raise ValidationError("This invitation has expired. Ask for a new one.")
    return invitation


def invitation_accept(*, token: str, user: User) -> Membership:
    """Join the invitation's workspace as ``user``, whose e-mail must match the invitation."""
    with transaction.atomic():
        invitation = _usable_invitation(token)
        if user.email.lower() != invitation.email.lower():
            raise ValidationError(
                f"This invitation is for {invitation.email}; you are signed in as {user.email}."
            )
        if Membership.objects.filter(workspace=invitation.workspace, user=user).exists():
            raise ValidationError(f"You are already a member of {invitation.workspace.name}.")
        membership = Membership.objects.create(
            workspace=invitation.workspace, user=user, role=invitation.role
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        workspace_broadcast(
            membership.workspace_id,
            MemberJoined(
                type="member.joined", user_id=user.pk, name=user.display_name, role=membership.role
            ),
        )
    return membership


def invitation_sign_up(*, token: str, name: str, password: str) -> Membership:
    """Create an account for the invited address and join the workspace, in one step."""
    with transaction.atomic():
        invitation = _usable_invitation(token)
        if User.objects.filter(email__iexact=invitation.email).exists():
            raise ValidationError(
                f"An account for {invitation.email} exists already; sign in to accept."
            )
        user = User(email=invitation.email, name=name.strip())
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise ValidationError({"password": error.error_list}) from None
        user.set_password(password)
        user.full_clean()
        user.save()
        return invitation_accept(token=token, user=user)


def _ensure_another_owner(membership: Membership) -> None:
    owners = list(
        Membership.objects.select_for_update()
        .filter(workspace_id=membership.workspace_id, role=Role.OWNER)
        .values_list("pk", flat=True)
    )
    if owners == [membership.pk]:
        raise ValidationError(
            "A workspace needs at least one owner. Make someone else an owner first."
        )


def _ensure_may_manage(actor: Membership, target: Membership) -> None:
    ensure_can(actor, Action.MANAGE_MEMBERS)
    if target.workspace_id != actor.workspace_id:
        raise PermissionDenied("That member belongs to another workspace.")
    if not may_manage(actor.role, target.role):
        raise PermissionDenied("Only an owner can change or remove an owner.")


def membership_change_role(*, actor: Membership, membership_id: int, role: str) -> Membership:
    """Give a member another role. Admins manage up to admin; only owners touch owners."""
    wanted = _clean_role(role)
    with transaction.atomic():
        target = (
            Membership.objects.select_for_update()
            .select_related("user")
            .filter(pk=membership_id, workspace_id=actor.workspace_id)
            .first()
        )
        if target is None:
            raise ValidationError("That person is not a member of this workspace.")
        _ensure_may_manage(actor, target)
        if wanted not in assignable_roles(actor.role):
            raise PermissionDenied(
                f"A {actor.get_role_display()} cannot make someone {wanted.label}."
            )
        if target.role == wanted:
            return target
        if target.role == Role.OWNER:
            _ensure_another_owner(target)
        target.role = wanted
        target.save(update_fields=["role"])
        workspace_broadcast(
            target.workspace_id,
            MemberRoleChanged(
                type="member.role_changed",
                user_id=target.user_id,
                name=target.user.display_name,
                role=wanted,
            ),
        )
    return target


def membership_remove(*, actor: Membership, membership_id: int) -> None:
    """Remove a member; anyone may remove themselves (leave) unless they are the last owner."""
    with transaction.atomic():
        target = (
            Membership.objects.select_for_update()
            .select_related("user")
            .filter(pk=membership_id, workspace_id=actor.workspace_id)
            .first()
        )
        if target is None:
            raise ValidationError("That person is not a member of this workspace.")
        if target.pk != actor.pk:
            _ensure_may_manage(actor, target)
        if target.role == Role.OWNER:
            _ensure_another_owner(target)
        target.delete()
        workspace_broadcast(
            target.workspace_id,
            MemberRemoved(
                type="member.removed", user_id=target.user_id, name=target.user.display_name
            ),
        )
