from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    """Collections, documents, chunks and (soon) the ingestion pipeline."""

    name = "ragapp.documents"
    label = "documents"
    verbose_name = "Documents"
