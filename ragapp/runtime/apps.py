from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    """Embedded services, start-up checks, health and the `serve` command."""

    name = "ragapp.runtime"
    label = "runtime"
    verbose_name = "Runtime"
