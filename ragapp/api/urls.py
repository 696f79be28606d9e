"""Where the APIs are mounted: /v1 (OpenAI-compatible)."""

from django.urls import path

from ragapp.api.v1.api import api as openai_api

urlpatterns = [
    path("v1/", openai_api.urls),
]
