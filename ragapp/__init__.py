"""ragapp: self-hosted document question answering."""

from ragapp.celery import app as celery_app

__all__ = ("celery_app",)
