"""Choosing the embedding provider for a model name."""

from __future__ import annotations

import json

import httpx
import pytest

from ragapp.providers.embeddings import clear_provider_cache, get_embedding_provider
from ragapp.providers.exceptions import ProviderConfigurationError
from ragapp.providers.local.minilm import MiniLMEmbeddingProvider
from ragapp.providers.local.word_llama import WordLlamaEmbeddingProvider
from ragapp.providers.openai import OpenAIEmbeddingProvider

BASE_URL = "http://llm.lan.test/v1"


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    settings.EMBEDDING_DIMENSIONS = None
    clear_provider_cache()
    yield
    clear_provider_cache()


def test_local_names_give_local_providers_once_per_process():
    minilm = get_embedding_provider("local/all-MiniLM-L6-v2")
    wordllama = get_embedding_provider("local/wordllama-l2-supercat")

    assert isinstance(minilm, MiniLMEmbeddingProvider)
    assert isinstance(wordllama, WordLlamaEmbeddingProvider)
    assert get_embedding_provider("local/all-MiniLM-L6-v2") is minilm


def test_unknown_local_name_lists_the_local_models():
    with pytest.raises(ProviderConfigurationError, match="local/all-MiniLM-L6-v2"):
        get_embedding_provider("local/bge-small")


def test_remote_model_without_key_or_url_names_the_variable():
    with pytest.raises(ProviderConfigurationError, match="OPENAI_API_KEY"):
        get_embedding_provider("text-embedding-3-small")


def test_remote_model_gets_catalog_dimensions_and_limits(settings):
    settings.OPENAI_API_KEY = "sk-test"

    provider = get_embedding_provider("text-embedding-3-large")

    assert isinstance(provider, OpenAIEmbeddingProvider)
    assert (provider.dimensions, provider.max_input_tokens) == (3072, 8191)


def test_unknown_remote_model_needs_its_dimensions(settings):
    settings.OPENAI_BASE_URL = BASE_URL

    with pytest.raises(ProviderConfigurationError, match="RAGAPP_EMBEDDING_DIMENSIONS"):
        get_embedding_provider("nomic-embed-text")


def test_lan_server_without_key_is_called_with_a_placeholder(settings, openai_http):
    settings.OPENAI_API_KEY = ""
    settings.EMBEDDING_MODEL = "nomic-embed-text"
    settings.EMBEDDING_DIMENSIONS = 4
    route = openai_http.post("/embeddings").respond(
        200,
        json={
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [3.0, 4.0, 0.0, 0.0]}
            ],
            "model": "nomic-embed-text",
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        },
    )

    provider = get_embedding_provider("nomic-embed-text")

    assert provider.embed(["hello"]) == [pytest.approx([0.6, 0.8, 0.0, 0.0])]
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer no-key"
    assert json.loads(request.content)["model"] == "nomic-embed-text"
    assert isinstance(route.calls.last.response, httpx.Response)


def test_changed_settings_build_a_new_provider(settings):
    settings.OPENAI_API_KEY = "sk-one"
    first = get_embedding_provider("text-embedding-3-small")

    settings.OPENAI_API_KEY = "sk-two"

    assert get_embedding_provider("text-embedding-3-small") is not first


def test_local_model_refuses_a_conflicting_dimension_override(settings):
    settings.EMBEDDING_MODEL = "local/all-MiniLM-L6-v2"
    settings.EMBEDDING_DIMENSIONS = 512

    with pytest.raises(ProviderConfigurationError, match="384"):
        get_embedding_provider("local/all-MiniLM-L6-v2")
