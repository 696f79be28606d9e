"""Pick the embedding provider for a model name.

`local/...` names run on this machine from files installed with ragapp; any other
name goes to the OpenAI-format API (OpenAI itself, or OPENAI_BASE_URL's server).
A collection stores its model name, so ingestion and search of that collection
always ask for the same one here, whatever the default is today.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.conf import settings
from django.utils.translation import gettext as _

from ragapp.providers import catalog
from ragapp.providers.base import EmbeddingProvider
from ragapp.providers.exceptions import ProviderConfigurationError

LOCAL_PREFIX = "local/"


def _local_minilm() -> EmbeddingProvider:
    from ragapp.providers.local.minilm import MiniLMEmbeddingProvider

    return MiniLMEmbeddingProvider()


def _local_wordllama() -> EmbeddingProvider:
    from ragapp.providers.local.word_llama import WordLlamaEmbeddingProvider

    return WordLlamaEmbeddingProvider()


# Imported on demand: a process that only ever talks to OpenAI never loads
# onnxruntime or the WordLlama weights.
LOCAL_PROVIDERS: dict[str, Callable[[], EmbeddingProvider]] = {
    "local/all-MiniLM-L6-v2": _local_minilm,
    "local/wordllama-l2-supercat": _local_wordllama,
}

_providers: dict[tuple[object, ...], EmbeddingProvider] = {}
_lock = threading.Lock()


def get_embedding_provider(model: str) -> EmbeddingProvider:
    """Return the provider for `model`, one per process for the same settings.

    Providers hold loaded models and HTTP connection pools, so they are shared.
    The cache key includes the settings a provider is built from, so a changed
    key, URL or timeout (tests, a reloaded configuration) gets a fresh one.
    """
    key = _cache_key(model)
    provider = _providers.get(key)
    if provider is not None:
        return provider
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            provider = _build(model)
            _providers[key] = provider
        return provider


def clear_provider_cache() -> None:
    """Forget every built provider (their loaded models stay loaded per process)."""
    with _lock:
        _providers.clear()


def _cache_key(model: str) -> tuple[object, ...]:
    override = getattr(settings, "EMBEDDING_DIMENSIONS", None)
    if model.startswith(LOCAL_PREFIX):
        return (model, override, settings.EMBEDDING_MODEL)
    return (
        model,
        override,
        settings.EMBEDDING_MODEL,
        settings.OPENAI_API_KEY,
        settings.OPENAI_BASE_URL,
        settings.MODEL_TIMEOUT_SECONDS,
    )


def _dimensions(model: str) -> int:
    try:
        return catalog.embedding_dimensions(model)
    except ValueError:
        raise ProviderConfigurationError(
            _(
                "ragapp does not know the vector size of the embedding model "
                "%(model)s; set RAGAPP_EMBEDDING_DIMENSIONS."
            )
            % {"model": model}
        ) from None


def _build(model: str) -> EmbeddingProvider:
    if model.startswith(LOCAL_PREFIX):
        factory = LOCAL_PROVIDERS.get(model)
        if factory is None:
            raise ProviderConfigurationError(
                _(
                    "There is no local embedding model %(model)s; choose one of "
                    "%(known)s."
                )
                % {"model": model, "known": ", ".join(sorted(LOCAL_PROVIDERS))}
            )
        provider = factory()
        if _dimensions(model) != provider.dimensions:
            raise ProviderConfigurationError(
                _(
                    "The local embedding model %(model)s makes %(native)d-dimensional "
                    "vectors; unset RAGAPP_EMBEDDING_DIMENSIONS or set it to that."
                )
                % {"model": model, "native": provider.dimensions}
            )
        return provider

    if not (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL):
        raise ProviderConfigurationError(
            _(
                "The embedding model %(model)s needs an API: set OPENAI_API_KEY (or "
                "OPENAI_BASE_URL for a server on your network), or use a local model "
                "such as local/all-MiniLM-L6-v2."
            )
            % {"model": model}
        )
    from ragapp.providers.openai import OpenAIEmbeddingProvider

    return OpenAIEmbeddingProvider(
        model,
        dimensions=_dimensions(model),
        max_input_tokens=catalog.embedding_max_input_tokens(model),
    )
