from django.apps import AppConfig


class ModerationConfig(AppConfig):
    """Every question and answer is screened; every verdict is kept."""

    name = "ragapp.moderation"
    label = "moderation"
    verbose_name = "Moderation"
