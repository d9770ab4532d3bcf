from django.apps import AppConfig


class RefactorsConfig(AppConfig):
    name = "apps.refactors"
    label = "refactors"
    verbose_name = "Refactors"

    def ready(self) -> None:
        # Registers the job-finished hook and the refactor.build task handler.
        from apps.refactors import handlers  # noqa: F401
