from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    """Embedded services, start-up checks, health and the `serve` command."""

    name = "ragapp.runtime"
    label = "runtime"
    verbose_name = "Runtime"

    def ready(self) -> None:
        # Makes ragapp's Celery app the current one in every Django process
        # before any task is sent (the job of the usual import in the
        # package's __init__, which the parse child must not pay for).
        import ragapp.celery  # noqa: F401
