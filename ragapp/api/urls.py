"""Where the APIs are mounted: /api (native) and /v1 (OpenAI-compatible)."""

from django.urls import path

from ragapp.api.native.api import api as native_api
from ragapp.api.v1.api import api as openai_api

urlpatterns = [
    path("api/", native_api.urls),
    path("v1/", openai_api.urls),
]
