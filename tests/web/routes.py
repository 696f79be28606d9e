"""Every route of the URLconf, and real objects to fill their path parameters.

The security tests (test_security_headers.py for T07, test_csrf.py for T08)
are generated from `app_routes()`, so a route added to any urls.py is covered
the next time they run, with no edit, as long as its path parameters are ones
`path_values()` knows. A route taking a parameter it does not know fails
(never skips) with a message saying where to add it.

The admin's own routes are Django's and are left out; everything else,
including unnamed routes (which fail: name them, URL names are namespaced).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from ragapp.accounts.roles import STAFF_GROUP
from ragapp.answers.models import Citation, Message, Thread
from ragapp.api.keys import apikey_create
from ragapp.api.models import ApiKey
from ragapp.documents import services as document_services
from ragapp.documents.models import Chunk, Collection, Document
from tests.factories import ChunkFactory, CollectionFactory, UserFactory

SKIPPED_NAMESPACES = frozenset({"admin"})
# Namespaces authenticated by a bearer API key, never by the session cookie:
# CSRF does not apply to them (tests/api checks a cookie alone gets a 401),
# but the security headers do.
TOKEN_NAMESPACES = frozenset({"openai", "api"})
ROLES = ("anonymous", "staff", "admin")


@dataclass(frozen=True)
class Route:
    """One URL pattern: its namespaced name, route text and path parameters."""

    name: str | None
    pattern: str
    params: tuple[str, ...]
    callback: Callable[..., object]

    @property
    def id(self) -> str:
        return self.name or self.pattern


def _params(pattern: URLPattern | URLResolver) -> tuple[str, ...]:
    converters = getattr(pattern.pattern, "converters", None)
    if converters is not None:  # path(): <int:thread_id>
        return tuple(converters)
    return tuple(pattern.pattern.regex.groupindex)  # re_path(): (?P<name>...)


def _walk(
    patterns: list[URLPattern | URLResolver],
    prefix: str = "",
    namespace: str = "",
    params: tuple[str, ...] = (),
) -> Iterator[Route]:
    for entry in patterns:
        text = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if entry.namespace in SKIPPED_NAMESPACES:
                continue
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, text, inner, params + _params(entry))
            continue
        name = f"{namespace}{entry.name}" if entry.name else None
        yield Route(name, text, params + _params(entry), entry.callback)


def app_routes(*, token_auth: bool = True) -> list[Route]:
    """Return every route of the project's URLconf but the admin's.

    With `token_auth=False`, also leave out the API routes (TOKEN_NAMESPACES).
    """
    routes = _walk(get_resolver().url_patterns)
    if token_auth:
        return list(routes)
    return [r for r in routes if (r.name or "").split(":")[0] not in TOKEN_NAMESPACES]


# --- Real objects for the path parameters ------------------------------------------


@dataclass
class Holdings:
    """What one signed-in user owns: a thread, a message, its citation, a key."""

    user: AbstractBaseUser
    thread: Thread
    message: Message
    citation: Citation
    api_key: ApiKey


@dataclass
class World:
    """A readable collection with a stored document, and each role's holdings."""

    collection: Collection
    document: Document
    chunk: Chunk
    staff: Holdings
    admin: Holdings

    def holdings(self, role: str) -> Holdings:
        # Anonymous visitors try the staff member's ids: they must be sent to
        # sign in, whoever the object belongs to.
        return self.admin if role == "admin" else self.staff


def _holdings(user: AbstractBaseUser, document: Document, chunk: Chunk) -> Holdings:
    thread = Thread.objects.create(user=user, title="Travel questions")
    message = Message.objects.create(
        thread=thread,
        question="How much are meals refunded?",
        answer="Up to 35 euros a day [1].",
        status=Message.Status.ANSWERED,
    )
    citation = Citation.objects.create(
        message=message,
        marker=1,
        chunk=chunk,
        document=document,
        document_title=document.title,
        page_start=1,
        page_end=1,
        quote=chunk.text,
    )
    api_key = apikey_create(user=user, name="Laptop script").key
    return Holdings(user, thread, message, citation, api_key)


def build_world(settings: Any, media_root: Path) -> World:
    """Make one of everything a route's path can name, for staff and for admin.

    `settings` is pytest-django's fixture: passwords are hashed with MD5
    (these tests never sign in by form, and Argon2 would take most of each
    test's time) and uploads go under `media_root`.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = media_root
    staff_group = Group.objects.get(name=STAFF_GROUP)
    staff_user = UserFactory(username="reader")
    staff_user.groups.add(staff_group)
    admin_user = UserFactory(username="boss", is_staff=True, is_superuser=True)
    collection = CollectionFactory(name="Handbook")
    collection.reader_groups.add(staff_group)
    text = "Meal expenses are refunded up to 35 euros a day with receipts."
    # Uploaded for real, so the stored file exists (downloads read it); the
    # test's transaction never commits, so no ingestion task is sent.
    document = document_services.document_upload(
        collection=collection, stream=io.BytesIO(text.encode()), filename="policy.txt"
    ).document
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.READY, indexed_version=1
    )
    document.refresh_from_db()
    chunk = ChunkFactory(document=document, text=text)
    return World(
        collection=collection,
        document=document,
        chunk=chunk,
        staff=_holdings(staff_user, document, chunk),
        admin=_holdings(admin_user, document, chunk),
    )


def sign_in(client: Client, world: World, role: str) -> None:
    """Sign the test client in as `role` ("anonymous" stays signed out)."""
    if role != "anonymous":
        client.force_login(world.holdings(role).user)


def path_values(world: World, role: str) -> dict[str, object]:
    """Return a value for every path parameter name a route may take.

    A new route whose parameter is not here fails the security tests: add
    the name, with the id of an object build_world() makes (make one if needed).
    """
    mine = world.holdings(role)
    return {
        "thread_id": mine.thread.pk,
        "message_id": mine.message.pk,
        "marker": mine.citation.marker,
        "page": 1,
        "document_id": world.document.pk,
        "collection_id": world.collection.pk,
        "user_id": mine.user.pk,
        "key_id": mine.api_key.pk,
        # The API's ids are strings; unknown ones still get the headers.
        "model": "ragapp-extractive",
        "file_id": "file-unknown",
        "vector_store_id": "vs_unknown",
        "batch_id": "vsfb_unknown",
        "response_id": "resp_unknown",
    }


# Routes whose parameters mean someone else's objects: an admin's audit
# opens a staff member's conversation, never their own.
ROUTE_VALUES: dict[str, Callable[[World, str], dict[str, object]]] = {
    "web:usage-conversation": lambda world, role: {"thread_id": world.staff.thread.pk},
}


def url_for(route: Route, world: World, role: str) -> str:
    """Return the route's URL with its parameters filled for `role`, or fail."""
    if route.name is None:
        pytest.fail(
            f"The route {route.pattern!r} has no name, so the security tests "
            "cannot reverse it: give it a namespaced name (`app:name`)."
        )
    values = path_values(world, role)
    if route.name in ROUTE_VALUES:
        values.update(ROUTE_VALUES[route.name](world, role))
    missing = [param for param in route.params if param not in values]
    if missing:
        pytest.fail(
            f"The route {route.name} ({route.pattern}) takes {missing}, which the "
            "security tests cannot fill: add them to path_values() in "
            "tests/web/routes.py, with ids of real objects build_world() makes."
        )
    return reverse(route.name, kwargs={p: values[p] for p in route.params})
