"""Messages become a tree (``parent``) so questions and answers can have versions.

Existing conversations were straight lines: each message's parent is the one before it.
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models


def link_existing_messages(apps, schema_editor):
    Message = apps.get_model("chat", "Message")
    previous: dict[int, int] = {}
    for message in Message.objects.order_by("conversation_id", "created_at", "pk").only(
        "pk", "conversation_id"
    ):
        parent_id = previous.get(message.conversation_id)
        if parent_id is not None:
            Message.objects.filter(pk=message.pk).update(parent_id=parent_id)
        previous[message.conversation_id] = message.pk


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="children",
                to="chat.message",
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["conversation", "parent"], name="chat_msg_versions"),
        ),
        migrations.RunPython(link_existing_messages, migrations.RunPython.noop),
    ]
