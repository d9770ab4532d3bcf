"""The migration that made messages a tree links the conversations stored before it."""

from __future__ import annotations

import importlib

from django.apps import apps

from apps.chat.models import Message

versions_migration = importlib.import_module("apps.chat.migrations.0002_message_parent")


def test_existing_conversations_become_one_path_each(conversation, owner, elsewhere_conversation):
    made = [
        Message.objects.create(conversation=c, role=role, content=f"{c.pk}-{n}")
        for n, (c, role) in enumerate(
            [
                (conversation, "user"),
                (conversation, "assistant"),
                (elsewhere_conversation, "user"),
                (conversation, "user"),
                (conversation, "assistant"),
                (elsewhere_conversation, "assistant"),
            ]
        )
    ]

    versions_migration.link_existing_messages(apps, None)

    parents = dict(Message.objects.values_list("pk", "parent_id"))
    here = [m.pk for m in made if m.conversation_id == conversation.pk]
    there = [m.pk for m in made if m.conversation_id == elsewhere_conversation.pk]
    assert [parents[pk] for pk in here] == [None, *here[:-1]]
    assert [parents[pk] for pk in there] == [None, there[0]]
