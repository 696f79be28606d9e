from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The JSON faces: API keys, the native API under /api and OpenAI's under /v1."""

    name = "ragapp.api"
    label = "api"
    verbose_name = "API"
