from __future__ import annotations

from django.http import HttpRequest

from apps.workspaces.selectors import workspace_list_for_user


def workspaces(request: HttpRequest) -> dict[str, object]:
    """The signed-in user's workspaces and the current one, for the layout's switcher."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    match = getattr(request, "resolver_match", None)
    current_slug = match.kwargs.get("slug") if match else None
    return {
        "my_workspaces": workspace_list_for_user(user=user),
        "current_slug": current_slug,
    }
