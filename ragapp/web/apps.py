from django.apps import AppConfig


class WebConfig(AppConfig):
    """Server-rendered pages (htmx); owns no models."""

    name = "ragapp.web"
    label = "web"
    verbose_name = "Web"
