from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import User
from apps.repos.selectors import repository_list
from apps.workspaces import services
from apps.workspaces.forms import (
    InvitationForm,
    RoleForm,
    SignUpForm,
    WorkspaceCreateForm,
    WorkspaceDeleteForm,
    WorkspaceRenameForm,
)
from apps.workspaces.models import Membership
from apps.workspaces.permissions import require_membership
from apps.workspaces.roles import ROLE_HELP, Action, Role, assignable_roles, can
from apps.workspaces.selectors import (
    invitation_list_pending,
    membership_list,
    workspace_list_for_user,
)
from qweb.views import add_service_errors, error_text, site_url


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "workspaces/home.html",
        {"workspaces": workspace_list_for_user(user=request.user)},  # type: ignore[arg-type]
    )


@login_required
@require_http_methods(["GET", "POST"])
def workspace_create(request: HttpRequest) -> HttpResponse:
    form = WorkspaceCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = services.workspace_create(
                user=request.user,  # type: ignore[arg-type]
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Workspace “{workspace.name}” is ready.")
            return redirect("workspaces:detail", slug=workspace.slug)
    return render(request, "workspaces/create.html", {"form": form})


@login_required
def workspace_detail(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug)
    workspace = membership.workspace
    return render(
        request,
        "workspaces/detail.html",
        {
            "membership": membership,
            "workspace": workspace,
            "members": membership_list(workspace=workspace)[:8],
            "member_count": workspace.memberships.count(),
            "pending_count": invitation_list_pending(workspace=workspace).count(),
            "role_help": ROLE_HELP[membership.role_enum],
            "repositories": repository_list(workspace=workspace),
            "can_contribute": can(membership.role, Action.CONTRIBUTE),
        },
    )


def _members_context(membership: Membership, **extra: object) -> dict[str, object]:
    workspace = membership.workspace
    manages = can(membership.role, Action.MANAGE_MEMBERS)
    roles = assignable_roles(membership.role)
    return {
        "membership": membership,
        "workspace": workspace,
        "members": membership_list(workspace=workspace),
        "invitations": invitation_list_pending(workspace=workspace) if manages else [],
        "manages": manages,
        "assignable_roles": roles,
        "role_help": [(role, ROLE_HELP[role]) for role in Role],
        "invite_form": extra.pop("invite_form", None) or InvitationForm(roles=roles),
        **extra,
    }


@login_required
def member_list(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug)
    return render(request, "workspaces/members.html", _members_context(membership))


@login_required
@require_POST
def invitation_create(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug, Action.MANAGE_MEMBERS)
    roles = assignable_roles(membership.role)
    form = InvitationForm(request.POST, roles=roles)
    new_link = None
    if form.is_valid():
        try:
            invitation, token = services.invitation_create(
                actor=membership,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                base_url=site_url(request),
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            new_link = f"{site_url(request)}{reverse('invitation_accept', args=[token])}"
            messages.success(request, f"Invitation sent to {invitation.email}.")
            form = InvitationForm(roles=roles)
    context = _members_context(membership, invite_form=form, new_link=new_link)
    if request.htmx:
        return render(request, "workspaces/_invitations.html", context)
    if new_link is None and form.errors:
        return render(request, "workspaces/members.html", context, status=400)
    return render(request, "workspaces/members.html", context)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, slug: str, invitation_id: int) -> HttpResponse:
    membership = require_membership(request, slug, Action.MANAGE_MEMBERS)
    try:
        invitation = services.invitation_revoke(actor=membership, invitation_id=invitation_id)
    except ValidationError as error:
        messages.error(request, error_text(error))
    else:
        messages.success(request, f"The invitation of {invitation.email} is withdrawn.")
    if request.htmx:
        return render(request, "workspaces/_invitations.html", _members_context(membership))
    return redirect("workspaces:members", slug=slug)


@login_required
@require_POST
def member_change_role(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    membership = require_membership(request, slug, Action.MANAGE_MEMBERS)
    form = RoleForm(request.POST)
    status = 200
    if not form.is_valid():
        if not request.htmx:
            return HttpResponseBadRequest("Choose one of the listed roles.")
        messages.error(request, "Choose one of the listed roles.")
        status = 400
    else:
        try:
            target = services.membership_change_role(
                actor=membership, membership_id=membership_id, role=form.cleaned_data["role"]
            )
        except ValidationError as error:
            messages.error(request, error_text(error))
            status = 400
        else:
            messages.success(
                request, f"{target.user.display_name} is now {target.get_role_display()}."
            )
    # The actor may have demoted themselves: re-read before rendering.
    if request.htmx:
        membership = require_membership(request, slug)
        return render(
            request, "workspaces/_member_table.html", _members_context(membership), status=status
        )
    return redirect("workspaces:members", slug=slug)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    membership = require_membership(request, slug)
    leaving = membership.pk == membership_id
    try:
        services.membership_remove(actor=membership, membership_id=membership_id)
    except ValidationError as error:
        messages.error(request, error_text(error))
        if request.htmx:
            return render(
                request, "workspaces/_member_table.html", _members_context(membership), status=400
            )
        return redirect("workspaces:members", slug=slug)
    if leaving:
        messages.success(request, f"You left {membership.workspace.name}.")
        return _redirect(request, reverse("workspaces:home"))
    messages.success(request, "Member removed.")
    if request.htmx:
        membership = require_membership(request, slug)
        return render(request, "workspaces/_member_table.html", _members_context(membership))
    return redirect("workspaces:members", slug=slug)


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that also works for htmx requests (full-page navigation)."""
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@login_required
@require_http_methods(["GET", "POST"])
def workspace_settings(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug, Action.MANAGE_WORKSPACE)
    workspace = membership.workspace
    rename_form = WorkspaceRenameForm(request.POST or None, instance=workspace)
    if request.method == "POST" and rename_form.is_valid():
        try:
            services.workspace_rename(actor=membership, name=rename_form.cleaned_data["name"])
        except ValidationError as error:
            add_service_errors(rename_form, error)
        else:
            messages.success(request, "Workspace renamed.")
            return redirect("workspaces:settings", slug=slug)
    workspace.refresh_from_db()
    return render(
        request,
        "workspaces/settings.html",
        {
            "membership": membership,
            "workspace": workspace,
            "rename_form": rename_form,
            "delete_form": WorkspaceDeleteForm(),
        },
        status=400 if rename_form.errors else 200,
    )


@login_required
@require_POST
def workspace_delete(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug, Action.MANAGE_WORKSPACE)
    form = WorkspaceDeleteForm(request.POST)
    if form.is_valid():
        try:
            services.workspace_delete(
                actor=membership, confirm_slug=form.cleaned_data["confirm_slug"]
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Workspace “{membership.workspace.name}” was deleted.")
            return redirect("workspaces:home")
    return render(
        request,
        "workspaces/settings.html",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "rename_form": WorkspaceRenameForm(instance=membership.workspace),
            "delete_form": form,
        },
        status=400,
    )


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_get_by_token(token=token)
    if invitation is None:
        return render(request, "workspaces/invitation_invalid.html", status=404)
    user = request.user
    has_account = User.objects.filter(email__iexact=invitation.email).exists()
    signup_form = SignUpForm(request.POST or None) if not user.is_authenticated else None
    error = None
    if invitation.state != "pending":
        error = {
            "accepted": "This invitation has already been used.",
            "revoked": "This invitation was withdrawn. Ask for a new one.",
            "expired": "This invitation has expired. Ask for a new one.",
        }[invitation.state]
    elif request.method == "POST":
        try:
            if user.is_authenticated:
                membership = services.invitation_accept(token=token, user=user)  # type: ignore[arg-type]
            elif signup_form is not None and not has_account and signup_form.is_valid():
                membership = services.invitation_sign_up(
                    token=token,
                    name=signup_form.cleaned_data["name"],
                    password=signup_form.cleaned_data["password"],
                )
                login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
            else:
                membership = None
        except ValidationError as exc:
            if signup_form is not None and hasattr(exc, "error_dict"):
                add_service_errors(signup_form, exc)
            else:
                error = " ".join(exc.messages)
            membership = None
        except PermissionDenied as exc:
            error = str(exc)
            membership = None
        if membership is not None:
            messages.success(request, f"Welcome to {membership.workspace.name}.")
            return redirect("workspaces:detail", slug=membership.workspace.slug)
    return render(
        request,
        "workspaces/invitation_accept.html",
        {
            "invitation": invitation,
            "has_account": has_account,
            "signup_form": signup_form,
            "error": error,
            "email_matches": user.is_authenticated
            and user.email.lower() == invitation.email.lower(),  # type: ignore[union-attr]
        },
        status=400 if error or (signup_form is not None and signup_form.errors) else 200,
    )
