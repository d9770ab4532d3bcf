from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "apps.chat"
    label = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # Registers the hook that stores an answer when its generation job ends.
        from apps.chat import handlers  # noqa: F401
