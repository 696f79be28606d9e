"""Who may call what, over every API operation (T01, T02, T03, T05).

Generated from the URLconf and both APIs' OpenAPI schemas: every operation
of /v1 and /api is replayed as each kind of caller, with a request body that
passes validation, so the answer is the access check's and not a 400. An
operation with no entry in CASES fails (never skips), and so does an API
route of the URLconf missing from the schemas, so a route added later
cannot go untested.

The callers: no key, a signed-in browser session without a key (the APIs
ignore cookies, which is why they need no CSRF token), a revoked key, an
expired key, another user's key, the owner's key scoped to another
collection, and the owner's read-only key. The owner holds a collection with
a canary word in its document, a file, a vector store, a batch and an
answered question; nobody else's answer may ever contain the canary.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from ragapp.answers.models import Message, Thread
from ragapp.api.keys import apikey_create, apikey_revoke
from ragapp.api.models import VectorStoreFileBatch
from ragapp.api.native.api import api as native_api
from ragapp.api.v1 import stores_service as stores
from ragapp.api.v1.api import api as openai_api
from ragapp.api.v1.responses import response_id
from tests.factories import CollectionFactory, UserFactory, indexed_document
from tests.web.routes import TOKEN_NAMESPACES, app_routes

pytestmark = pytest.mark.django_db

CANARY = "Quokkafjord"
MOUNTS = {"/v1/": openai_api, "/api/": native_api}
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Case:
    """How to call one operation validly; `write` if a read-only key must fail."""

    body: dict[str, Any] | None = None
    write: bool = False
    # The form field of an upload's file, for multipart operations.
    multipart: str = ""
    # Path parameters naming the owner's objects inside a collection: a key
    # scoped elsewhere must get a 404. Parameters not listed (a file, a
    # response) belong to the user, not to a collection.
    collection_bound: bool = False


def _store(world) -> list[dict]:
    return [{"type": "file_search", "vector_store_ids": [world["vector_store_id"]]}]


def _vault(world) -> list[int]:
    return [world["collection_id"]]


CASES: dict[str, Any] = {
    # --- /v1 ---
    "GET /v1/models": Case(),
    "GET /v1/models/{model}": Case(collection_bound=True),
    "POST /v1/chat/completions": Case(
        body={
            "model": "collection:{slug}",
            "messages": [{"role": "user", "content": "What is the secret?"}],
        },
        collection_bound=True,
    ),
    "POST /v1/embeddings": Case(body={"model": "text-embedding-3-small", "input": "x"}),
    "POST /v1/moderations": Case(body={"input": "hello"}),
    "POST /v1/files": Case(write=True, multipart="file"),
    "GET /v1/files": Case(),
    "GET /v1/files/{file_id}": Case(),
    "DELETE /v1/files/{file_id}": Case(write=True),
    "GET /v1/files/{file_id}/content": Case(),
    "POST /v1/vector_stores": Case(body={"name": "New"}, write=True),
    "GET /v1/vector_stores": Case(),
    "GET /v1/vector_stores/{vector_store_id}": Case(collection_bound=True),
    "POST /v1/vector_stores/{vector_store_id}": Case(
        body={"name": "Renamed"}, write=True, collection_bound=True
    ),
    "DELETE /v1/vector_stores/{vector_store_id}": Case(
        write=True, collection_bound=True
    ),
    "POST /v1/vector_stores/{vector_store_id}/files": Case(
        body={"file_id": "{api_file_id}"}, write=True, collection_bound=True
    ),
    "GET /v1/vector_stores/{vector_store_id}/files": Case(collection_bound=True),
    "GET /v1/vector_stores/{vector_store_id}/files/{file_id}": Case(
        collection_bound=True
    ),
    "POST /v1/vector_stores/{vector_store_id}/files/{file_id}": Case(
        body={"attributes": {"team": "x"}}, write=True, collection_bound=True
    ),
    "DELETE /v1/vector_stores/{vector_store_id}/files/{file_id}": Case(
        write=True, collection_bound=True
    ),
    "GET /v1/vector_stores/{vector_store_id}/files/{file_id}/content": Case(
        collection_bound=True
    ),
    "POST /v1/vector_stores/{vector_store_id}/file_batches": Case(
        body={"file_ids": ["{api_file_id}"]}, write=True, collection_bound=True
    ),
    "GET /v1/vector_stores/{vector_store_id}/file_batches/{batch_id}": Case(
        collection_bound=True
    ),
    "POST /v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel": Case(
        write=True, collection_bound=True
    ),
    "GET /v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files": Case(
        collection_bound=True
    ),
    "POST /v1/vector_stores/{vector_store_id}/search": Case(
        body={"query": CANARY}, collection_bound=True
    ),
    "POST /v1/responses": Case(
        body={"model": "ragapp-extractive", "input": "secret?", "tools": _store},
        collection_bound=True,
    ),
    "GET /v1/responses/{response_id}": Case(),
    "DELETE /v1/responses/{response_id}": Case(write=True),
    "POST /v1/responses/{response_id}/cancel": Case(write=True),
    "GET /v1/responses/{response_id}/input_items": Case(),
    # --- /api ---
    "GET /api/collections": Case(),
    "POST /api/collections": Case(body={"name": "New"}, write=True),
    "GET /api/collections/{collection_id}": Case(collection_bound=True),
    "PATCH /api/collections/{collection_id}": Case(
        body={"description": "Changed"}, write=True, collection_bound=True
    ),
    "GET /api/collections/{collection_id}/documents": Case(collection_bound=True),
    "POST /api/collections/{collection_id}/documents": Case(
        write=True, multipart="files", collection_bound=True
    ),
    "GET /api/documents/{document_id}": Case(collection_bound=True),
    "DELETE /api/documents/{document_id}": Case(write=True, collection_bound=True),
    "POST /api/documents/{document_id}/retry": Case(write=True, collection_bound=True),
    "POST /api/documents/{document_id}/reindex": Case(
        write=True, collection_bound=True
    ),
    "GET /api/documents/{document_id}/file": Case(collection_bound=True),
    "POST /api/search": Case(
        body={"query": CANARY, "collection_ids": _vault},
        collection_bound=True,
    ),
    "POST /api/ask": Case(
        body={"question": f"What is {CANARY}?", "collection_ids": _vault},
        collection_bound=True,
    ),
    "GET /api/threads": Case(),
    "GET /api/threads/{thread_id}": Case(),
    "DELETE /api/threads/{thread_id}": Case(write=True),
    "POST /api/messages/{message_id}/feedback": Case(body={"rating": "up"}),
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def operations() -> list[Operation]:
    found = []
    for prefix, api in MOUNTS.items():
        schema = api.get_openapi_schema(path_prefix=prefix)
        for path, methods in schema["paths"].items():
            found += [Operation(method.upper(), path) for method in methods]
    return found


OPERATIONS = operations()


def test_every_api_route_of_the_urlconf_is_in_the_schemas():
    documented = {op.path.split("{")[0].rstrip("/") for op in OPERATIONS}
    for route in app_routes():
        namespace = (route.name or "").split(":")[0]
        if namespace not in TOKEN_NAMESPACES or route.name.endswith(
            ("api-root", "openapi-json", "openapi-view")
        ):
            continue
        text = "/" + route.pattern.split("<")[0].rstrip("/")
        assert any(d.startswith(text) or text.startswith(d) for d in documented), (
            f"{route.name} ({route.pattern}) is in no OpenAPI schema"
        )


# --- the world ---------------------------------------------------------------------


@dataclass
class World:
    values: dict[str, Any]
    keys: dict[str, str] = field(default_factory=dict)
    owner: Any = None


@pytest.fixture
def world(settings, tmp_path) -> World:
    settings.MEDIA_ROOT = tmp_path / "media"
    # Hundreds of bad keys from one address: the limiter (tested on its own)
    # would answer 429 before the access checks this file is about.
    settings.API_FAILED_AUTH_PER_MINUTE = 0
    settings.API_REQUESTS_PER_MINUTE = 0
    settings.API_USER_REQUESTS_PER_MINUTE = 0
    owner = UserFactory(username="owner", is_superuser=True)
    collection = CollectionFactory(name="Vault", slug="vault")
    indexed_document(collection, "vault.md", f"# Vault\n\nThe secret is {CANARY}.\n")
    elsewhere = CollectionFactory(name="Elsewhere", slug="elsewhere")
    store_id = stores.vector_store_ids([collection.pk])[0]
    document = collection.documents.get()
    file_id = stores.document_file_ids([document.pk])[document.pk]
    api_file = stores.api_file_create(
        user=owner,
        stream=io.BytesIO(f"{CANARY} notes".encode()),
        filename=f"{CANARY}.txt",
        purpose="assistants",
    )
    batch = VectorStoreFileBatch.objects.create(
        vector_store=collection.vector_store, created_by=owner
    )
    thread = Thread.objects.create(user=owner, title=f"About {CANARY}")
    message = Message.objects.create(
        thread=thread,
        question=f"What is {CANARY}?",
        answer=f"It is {CANARY}.",
        status=Message.Status.ANSWERED,
    )
    values = {
        "slug": collection.slug,
        "model": f"collection:{collection.slug}",
        "vector_store_id": store_id,
        "file_id": file_id,
        "api_file_id": api_file.public_id,
        "batch_id": batch.public_id,
        "response_id": response_id(message),
        "collection_id": collection.pk,
        "document_id": document.pk,
        "thread_id": thread.pk,
        "message_id": message.pk,
    }
    # Routes under /v1/files/{file_id} name the uploaded file, not the document.
    world = World(values=values, owner=owner)
    stranger = UserFactory(username="stranger", is_superuser=False)
    revoked = apikey_create(user=owner, name="revoked")
    apikey_revoke(key=revoked.key)
    world.keys = {
        "stranger": apikey_create(user=stranger, name="s").secret,
        "revoked": revoked.secret,
        "expired": apikey_create(
            user=owner,
            name="expired",
            expires_at=timezone.now() - dt.timedelta(minutes=1),
        ).secret,
        "scoped elsewhere": apikey_create(
            user=owner, name="scoped", collections=[elsewhere]
        ).secret,
        "read-only": apikey_create(user=owner, name="ro", read_only=True).secret,
    }
    return world


def _fill(value: Any, world: World) -> Any:
    if callable(value):
        return value(world.values)
    if isinstance(value, str):
        return value.format(**world.values) if "{" in value else value
    if isinstance(value, list):
        return [_fill(item, world) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, world) for key, item in value.items()}
    return value


def _url(op: Operation, world: World, case: Case) -> str:
    values = dict(world.values)
    if op.path.startswith("/v1/files/"):
        values["file_id"] = world.values["api_file_id"]
    try:
        return op.path.format(**values)
    except KeyError as missing:
        pytest.fail(f"{op.id} takes {missing}, which the matrix's world lacks")


def call(client: Client, op: Operation, world: World, key: str | None):
    case = CASES.get(op.id)
    if case is None:
        pytest.fail(
            f"{op.id} has no case in CASES (tests/api/test_permission_matrix.py): "
            "add how to call it validly."
        )
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    url = _url(op, world, case)
    if case.multipart:
        data = {
            case.multipart: SimpleUploadedFile("new.txt", b"new"),
            "purpose": "assistants",
        }
        return client.post(url, data, **headers)
    if case.body is not None:
        return client.generic(
            op.method,
            url,
            _json(_fill(case.body, world)),
            content_type="application/json",
            **headers,
        )
    return client.generic(op.method, url, **headers)


def _json(body: Any) -> str:
    return json.dumps(body)


def _case(op: Operation) -> Case:
    return CASES.get(op.id) or pytest.fail(f"{op.id} has no case in CASES")


def assert_denied(response, statuses: set[int]) -> None:
    assert response.status_code in statuses, response.content[:300]
    assert response.json()["error"]


def assert_no_canary(response) -> None:
    assert CANARY not in response.content.decode(errors="replace")


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.id)
@pytest.mark.parametrize("who", ["no key", "session only", "revoked", "expired"])
def test_no_usable_key_is_a_401(client, world, op, who):
    _case(op)
    if who == "session only":
        client.force_login(world.owner)
    key = world.keys.get(who)
    response = call(client, op, world, key)
    assert_denied(response, {401})
    assert_no_canary(response)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.id)
def test_another_users_key_never_sees_the_owners_data(client, world, op):
    case = _case(op)
    response = call(client, op, world, world.keys["stranger"])
    if "{" in op.path:
        assert_denied(response, {404})
    elif case.collection_bound:
        assert_denied(response, {403, 404})
    assert_no_canary(response)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.id)
def test_a_key_scoped_elsewhere_finds_nothing_of_the_collection(client, world, op):
    case = _case(op)
    response = call(client, op, world, world.keys["scoped elsewhere"])
    if case.collection_bound:
        assert_denied(response, {403, 404})
        assert_no_canary(response)
    assert response.status_code < 500, response.content[:300]


@pytest.mark.parametrize(
    "op",
    [op for op in OPERATIONS if op.id in CASES and CASES[op.id].write],
    ids=lambda op: op.id,
)
def test_a_read_only_key_changes_nothing(client, world, op):
    response = call(client, op, world, world.keys["read-only"])
    assert_denied(response, {403})
