"""ASGI entry point: uvicorn serves this (streamed answers need async)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragapp.settings")

application = get_asgi_application()
