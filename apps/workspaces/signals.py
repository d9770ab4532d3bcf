"""Tell open sockets when someone's access may have changed, however the change was made.

Receivers rather than calls in each service, because access is lost through many writes:
a member removed or given another role (services), a workspace deleted (its memberships go
by cascade), a user deactivated (an administrator, a shell, a later admin console). Each
only announces, after commit, to the user's own sockets (``access.user.<id>``); every
socket then reads its access again from the database and closes 4403 if it is gone.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from apps.accounts.models import User
from apps.workspaces.models import Membership
from qweb.realtime import access_changed_broadcast


def _membership_changed(sender: type, instance: Membership, **kwargs: Any) -> None:
    if kwargs.get("created"):
        return  # joining grants access; nothing open needs closing
    access_changed_broadcast(instance.user_id)


def _user_saved(sender: type, instance: User, **kwargs: Any) -> None:
    if not instance.is_active and not kwargs.get("created"):
        access_changed_broadcast(instance.pk)


def connect() -> None:
    post_save.connect(_membership_changed, sender=Membership, dispatch_uid="qweb-access-m")
    post_delete.connect(_membership_changed, sender=Membership, dispatch_uid="qweb-access-md")
    post_save.connect(_user_saved, sender=User, dispatch_uid="qweb-access-u")
