from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    """Search over the passages a user may read, and the statistics it ranks by."""

    name = "ragapp.retrieval"
    label = "retrieval"
    verbose_name = "Retrieval"
