"""What `model` may name under /v1, for one caller.

- `collection:<slug>`: a collection the caller may read, answered by the
  grounded loop (the configured chat model, or the extractive answerer
  offline), with citations.
- `ragapp-extractive`: the offline extractive answerer over every collection
  the caller may read; always available.
- the configured chat model (RAGAPP_CHAT_MODEL, only when a model server is
  configured): passed through, tools and response_format included.
- embedding models: the local ones, and OpenAI's when a model server is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.utils.translation import gettext as _

from ragapp.api.callers import Caller
from ragapp.api.exceptions import NotFoundError
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.providers.embeddings import LOCAL_PREFIX

COLLECTION_PREFIX = "collection:"
EXTRACTIVE_MODEL = "ragapp-extractive"
OWNER = "ragapp"

Kind = Literal["collection", "extractive", "chat", "embedding"]


@dataclass(frozen=True)
class ModelEntry:
    id: str
    kind: Kind
    created: int
    collection_id: int | None = None


def model_server_configured() -> bool:
    return bool(settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL)


def embedding_models() -> list[str]:
    local = sorted(
        name for name in EMBEDDING_DIMENSIONS if name.startswith(LOCAL_PREFIX)
    )
    names = [settings.EMBEDDING_MODEL, *local]
    if model_server_configured():
        names += sorted(
            n for n in EMBEDDING_DIMENSIONS if not n.startswith(LOCAL_PREFIX)
        )
    return list(dict.fromkeys(names))


def model_catalog(caller: Caller) -> list[ModelEntry]:
    entries = [
        ModelEntry(
            id=f"{COLLECTION_PREFIX}{collection.slug}",
            kind="collection",
            created=int(collection.created_at.timestamp()),
            collection_id=collection.pk,
        )
        for collection in caller.collections().order_by("slug")
    ]
    entries.append(ModelEntry(id=EXTRACTIVE_MODEL, kind="extractive", created=0))
    if model_server_configured():
        entries.append(ModelEntry(id=settings.CHAT_MODEL, kind="chat", created=0))
    entries += [
        ModelEntry(id=name, kind="embedding", created=0) for name in embedding_models()
    ]
    seen: set[str] = set()
    unique = []
    for entry in entries:
        if entry.id not in seen:
            seen.add(entry.id)
            unique.append(entry)
    return unique


def model_resolve(caller: Caller, model: str, *, kinds: tuple[Kind, ...]) -> ModelEntry:
    """The catalog entry `model` names, of one of `kinds`, or a 404 naming it."""
    if model.startswith(COLLECTION_PREFIX) and "collection" in kinds:
        slug = model.removeprefix(COLLECTION_PREFIX)
        collection = caller.collections().filter(slug=slug).first()
        if collection is not None:
            return ModelEntry(
                id=model,
                kind="collection",
                created=int(collection.created_at.timestamp()),
                collection_id=collection.pk,
            )
    else:
        for entry in model_catalog(caller):
            if entry.id == model and entry.kind in kinds:
                return entry
    raise NotFoundError(
        _(
            "The model '%(model)s' does not exist or you do not have access to "
            "it. GET /v1/models lists the models this key may use."
        )
        % {"model": model},
        param="model",
        code="model_not_found",
    )
