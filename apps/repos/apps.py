from django.apps import AppConfig


class ReposConfig(AppConfig):
    name = "apps.repos"
    label = "repos"
    verbose_name = "Repositories"

    def ready(self) -> None:
        # Registers the import, clone and sync task handlers with the task runner.
        from apps.repos import tasks  # noqa: F401
