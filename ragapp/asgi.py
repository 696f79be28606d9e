"""ASGI entry point: uvicorn serves this (streamed answers need async)."""

import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragapp.settings")

application = get_asgi_application()

# Load the local models now, beside the server starting, not on the first question.
from ragapp.answers.services import warm_up  # noqa: E402

threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
