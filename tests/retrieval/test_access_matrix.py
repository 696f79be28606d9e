"""T02: retrieval honours ACLs, for every user, collection and entry point.

Three collections (alpha, bravo, and one both tenants share), each with
documents full of its own canary string, indexed by the real pipeline. Every
retrieval entry point is asked, by every kind of user, for every collection's
canary: plainly, with forged `collection_ids`, and with filters that single
out the collection. A collection the user may not read gives 0 canaries and 0
counted terms; one they may read gives its canaries back (so a search that
finds nothing at all cannot pass). The SQL of each entry point, and its plan,
must carry the reader-group predicate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from ragapp.documents.models import Chunk, Collection
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.retrieval.lexical import bm25_ranking, query_terms
from ragapp.retrieval.lexicon import lexicon_drift, term_statistics
from ragapp.retrieval.search import (
    chunk_search,
    query_vectors,
    search_config,
    search_scope,
    searchable_chunks,
    sentence_ranking,
    vector_ranking,
)
from tests.conftest import TEST_REDIS_URL
from tests.factories import CollectionFactory, UserFactory, indexed_document
from tests.openai_fake import fake_openai_here, grading_model, quoted_passages
from tests.retrieval.conftest import FAST_MODEL

pytestmark = pytest.mark.django_db

TENANTS = ("alpha", "bravo", "shared")
PREFIX = "t02-matrix-"
MISSING_ID = 2**31 - 1
CANARY = re.compile(r"zqcanary(alpha|bravo|shared)")


def canary(tenant: str) -> str:
    return f"zqcanary{tenant}"


# Who may read what: superusers and holders of the change permission read
# everything; others read the collections of their groups; inactive and
# anonymous users read nothing, whatever else they are.
READABLE = {
    "superuser": {"alpha", "bravo", "shared"},
    "admin_role": {"alpha", "bravo", "shared"},
    "staff_alpha": {"alpha", "shared"},
    "staff_bravo": {"bravo", "shared"},
    "member_of_both": {"alpha", "bravo", "shared"},
    "member_of_none": set(),
    "inactive_alpha": set(),
    "inactive_superuser": set(),
    "anonymous": set(),
}
USERS = tuple(READABLE)
GROUP_USERS = ("staff_alpha", "staff_bravo", "member_of_both", "member_of_none")


@dataclass
class World:
    collections: dict[str, Collection]
    users: dict[str, object]
    tenant_of_chunk: dict[int, str] = field(default_factory=dict)
    messages_left: int = 0  # on the test queues by building the world

    def chunks_of(self, tenant: str) -> set[int]:
        return {pk for pk, t in self.tenant_of_chunk.items() if t == tenant}


def _document(tenant: str, n: int) -> str:
    mark = canary(tenant)
    return (
        f"# {mark} briefing {n}\n\n"
        f"The vault code is {mark}{n}. Meeting notes about the vault.\n\n"
        f"## Budget\n\nThe quarterly vault budget {mark}x{n} was approved.\n"
    )


def _build() -> World:
    groups = {t: Group.objects.create(name=f"{PREFIX}{t}") for t in ("alpha", "bravo")}
    collections = {}
    for tenant in TENANTS:
        collection = CollectionFactory(
            name=f"{canary(tenant)} collection",
            slug=f"{PREFIX}{tenant}",
            embedding_model=FAST_MODEL,
            embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
        )
        readers = list(groups.values()) if tenant == "shared" else [groups[tenant]]
        collection.reader_groups.set(readers)
        collections[tenant] = collection
        for n in range(2):
            document = indexed_document(
                collection,
                f"{canary(tenant)}-{n}.md",
                _document(tenant, n),
                title=f"{canary(tenant)} report {n}",
                attributes={"tenant": tenant, "kind": "memo"},
            )
            assert document.indexed_version == 1, document.error_message

    def user(key: str, groups_: tuple[str, ...] = (), **fields):
        made = UserFactory(username=f"{PREFIX}{key}", password=None, **fields)
        made.groups.set([groups[g] for g in groups_])
        return made

    users = {
        "superuser": user("superuser", is_superuser=True, is_staff=True),
        "admin_role": user("admin_role", is_staff=True),
        "staff_alpha": user("staff_alpha", ("alpha",), is_staff=True),
        "staff_bravo": user("staff_bravo", ("bravo",), is_staff=True),
        "member_of_both": user("member_of_both", ("alpha", "bravo")),
        "member_of_none": user("member_of_none"),
        "inactive_alpha": user("inactive_alpha", ("alpha",), is_active=False),
        "inactive_superuser": user(
            "inactive_superuser", is_superuser=True, is_staff=True, is_active=False
        ),
        "anonymous": AnonymousUser(),
    }
    users["admin_role"].user_permissions.add(
        Permission.objects.get(
            content_type__app_label="documents", codename="change_collection"
        )
    )
    world = World(collections=collections, users=users)
    for tenant, collection in collections.items():
        assert lexicon_drift(collection_id=collection.pk) == {}
        for pk in searchable_chunks(
            user=users["superuser"], collection_ids=[collection.pk]
        ).values_list("pk", flat=True):
            world.tenant_of_chunk[pk] = tenant
    return world


def _cleanup() -> None:
    Collection.objects.filter(slug__startswith=PREFIX).delete()
    UserFactory._meta.model.objects.filter(username__startswith=PREFIX).delete()
    Group.objects.filter(name__startswith=PREFIX).delete()


def queued(queue: str) -> int:
    """Messages waiting on the test queue and its embedding queue."""
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL, socket_timeout=5)
    return sum(client.llen(name) for name in (queue, f"{queue}.embed"))


@pytest.fixture(scope="module")
def world(
    django_db_setup, django_db_blocker, tmp_path_factory, celery_broker
) -> Iterator[World]:
    """Indexed once for the module by the real pipeline, committed, then deleted.

    The ingest tasks the committed uploads send run here, eagerly
    (`indexed_document`): nothing is left on the test queue.
    """
    media = tmp_path_factory.mktemp("t02-media")
    try:
        before = queued(celery_broker)
        with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media):
            built = _build()
        built.messages_left = queued(celery_broker) - before
        yield built
    finally:
        with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media):
            _cleanup()


# --- The entry points, each asked for one tenant's canary ------------------------------


@dataclass(frozen=True)
class Request:
    """How an entry point is asked: for which collections, with which filter."""

    name: str
    collection_ids: Callable[[World, str], list[int] | None]
    filters: Callable[[str], dict | None]

    def requested(self, world: World, tenant: str) -> set[str]:
        ids = self.collection_ids(world, tenant)
        if ids is None:
            return set(TENANTS)
        return {t for t, c in world.collections.items() if c.pk in ids}

    def admits(self, tenant: str, chunk_tenant: str) -> bool:
        """Whether the filter lets a chunk of `chunk_tenant` through."""
        return self.filters(tenant) is None or chunk_tenant == tenant


def _all_ids(world: World, tenant: str) -> list[int]:
    return [c.pk for c in world.collections.values()] + [MISSING_ID]


def _tenant_filter(tenant: str) -> dict:
    return {"type": "eq", "key": "tenant", "value": tenant}


PLAIN = Request("plain", lambda w, t: None, lambda t: None)
FORGED_IDS = Request("forged_ids", _all_ids, lambda t: None)
TARGET_ID = Request("target_id", lambda w, t: [w.collections[t].pk], lambda t: None)
FORGED_FILTER = Request("forged_filter", lambda w, t: None, _tenant_filter)
FORGED_BOTH = Request(
    "forged_ids_and_filter",
    _all_ids,
    lambda t: {
        "type": "or",
        "filters": [
            _tenant_filter(t),
            {
                "type": "and",
                "filters": [
                    _tenant_filter(t),
                    {"type": "ne", "key": "nothing", "value": "x"},
                ],
            },
        ],
    },
)
# The last of each is the most forged: the SQL tests use it.
SCOPE_REQUESTS = (PLAIN, TARGET_ID, FORGED_IDS)
CHUNK_REQUESTS = (PLAIN, TARGET_ID, FORGED_IDS, FORGED_FILTER, FORGED_BOTH)


@dataclass
class Outcome:
    chunk_ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    collection_ids: set[int] = field(default_factory=set)
    frequency: int | None = None
    chunk_count: int | None = None


def _chunks(world, user, tenant, request):
    return searchable_chunks(
        user=user,
        collection_ids=request.collection_ids(world, tenant),
        filters=request.filters(tenant),
    )


def _scope(world, user, tenant, request):
    return search_scope(user=user, collection_ids=request.collection_ids(world, tenant))


# Each entry point is called (the SQL of the call is what the SQL tests check),
# then its result is read by the test, with no access rule, to find canaries.


def call_search_scope(world, user, tenant, request) -> set[int]:
    return set(_scope(world, user, tenant, request).values_list("pk", flat=True))


def read_search_scope(ids: set[int]) -> Outcome:
    names = list(Collection.objects.filter(pk__in=ids).values_list("name", flat=True))
    return Outcome(texts=names, collection_ids=ids)


def call_searchable_chunks(world, user, tenant, request) -> list[int]:
    return list(_chunks(world, user, tenant, request).values_list("pk", flat=True))


def call_vector_ranking(world, user, tenant, request) -> list[int]:
    ranking = vector_ranking(
        _chunks(world, user, tenant, request), query=canary(tenant), depth=100
    )
    return [pk for pk, _ in ranking]


def call_sentence_ranking(world, user, tenant, request) -> list[int]:
    """Forged candidates: every chunk of every tenant, proposed for re-scoring."""
    ranking = sentence_ranking(
        _chunks(world, user, tenant, request),
        candidates=world.tenant_of_chunk,
        vectors=query_vectors(canary(tenant), [FAST_MODEL]),
    )
    return [pk for pk, _ in ranking]


def call_bm25_ranking(world, user, tenant, request) -> list[int]:
    ranking = bm25_ranking(
        _chunks(world, user, tenant, request),
        scope=_scope(world, user, tenant, request),
        query=f"{canary(tenant)} vault code",
        depth=100,
    )
    return [pk for pk, _ in ranking]


def read_chunks(chunk_ids: list[int]) -> Outcome:
    rows = Chunk.objects.filter(pk__in=chunk_ids).values_list(
        "collection_id", "heading", "text", "document__title"
    )
    return Outcome(
        chunk_ids=list(chunk_ids),
        texts=[" ".join(row[1:]) for row in rows],
        collection_ids={row[0] for row in rows},
    )


def call_term_statistics(world, user, tenant, request) -> tuple[str, object]:
    (lexeme,) = query_terms(canary(tenant))
    stats = term_statistics(
        collection_ids=_scope(world, user, tenant, request),
        lexemes=[lexeme, "vault"],
    )
    return lexeme, stats


def read_term_statistics(result: tuple[str, object]) -> Outcome:
    lexeme, stats = result
    return Outcome(frequency=stats.frequency[lexeme], chunk_count=stats.chunk_count)


def call_chunk_search(world, user, tenant, request) -> list:
    return chunk_search(
        user=user,
        query=f"{canary(tenant)} vault code",
        collection_ids=request.collection_ids(world, tenant),
        filters=request.filters(tenant),
        limit=100,
    )


def call_chunk_search_model_rerank(world, user, tenant, request) -> tuple[list, list]:
    """With a chat model grading the top passages: what it is sent counts too.

    The fake model grades every passage it is sent 3 and records the
    requests; a passage of another tenant in a request would have left the
    user's scope for the model, so its text joins the outcome.
    """
    with fake_openai_here() as model:
        route = model.post("/chat/completions").mock(
            side_effect=grading_model(lambda t: 3)
        )
        passages = chunk_search(
            user=user,
            query=f"{canary(tenant)} vault code",
            collection_ids=request.collection_ids(world, tenant),
            filters=request.filters(tenant),
            limit=100,
            config=replace(search_config(), rerank="model", rerank_depth=100),
        )
    sent = [
        text for call in route.calls for text in quoted_passages(call.request).values()
    ]
    # A grader that was never asked would prove nothing.
    assert bool(passages) == route.called
    assert all(p.rerank_score == 3.0 for p in passages)
    return passages, sent


def read_graded(result: tuple[list, list]) -> Outcome:
    passages, sent = result
    outcome = read_passages(passages)
    outcome.texts.extend(sent)
    return outcome


def read_passages(passages: list) -> Outcome:
    """The passages as returned: their own text, heading and title."""
    return Outcome(
        chunk_ids=[p.chunk_id for p in passages],
        texts=[f"{p.document_title} {p.heading} {p.text}" for p in passages],
        collection_ids={p.collection_id for p in passages},
    )


ENTRY_POINTS = {
    "search_scope": (call_search_scope, read_search_scope, SCOPE_REQUESTS),
    "term_statistics": (call_term_statistics, read_term_statistics, SCOPE_REQUESTS),
    "searchable_chunks": (call_searchable_chunks, read_chunks, CHUNK_REQUESTS),
    "vector_ranking": (call_vector_ranking, read_chunks, CHUNK_REQUESTS),
    "bm25_ranking": (call_bm25_ranking, read_chunks, CHUNK_REQUESTS),
    "sentence_ranking": (call_sentence_ranking, read_chunks, CHUNK_REQUESTS),
    "chunk_search": (call_chunk_search, read_passages, CHUNK_REQUESTS),
    "chunk_search_model_rerank": (
        call_chunk_search_model_rerank,
        read_graded,
        CHUNK_REQUESTS,
    ),
}
CASES = [
    pytest.param(entry, request, id=f"{entry}[{request.name}]")
    for entry, (_, _, requests) in ENTRY_POINTS.items()
    for request in requests
]


# --- The matrix ---------------------------------------------------------------------------


@pytest.mark.parametrize("entry, request_", CASES)
@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("who", USERS)
def test_canaries_reach_only_readers(world, who, tenant, entry, request_):
    user = world.users[who]
    call, read, _ = ENTRY_POINTS[entry]
    outcome = read(call(world, user, tenant, request_))
    readable = READABLE[who]
    visible = readable & request_.requested(world, tenant)
    visible_ids = {world.collections[t].pk for t in visible}
    where = f"{who} x {tenant} x {entry}[{request_.name}]"

    leaked = {
        found for text in outcome.texts for found in CANARY.findall(text)
    } - readable
    assert not leaked, (
        f"{where}: canaries of {leaked} reached a user who may not read them"
    )
    assert outcome.collection_ids <= visible_ids, f"{where}: foreign collections"
    assert set(outcome.chunk_ids) <= {
        pk
        for pk, t in world.tenant_of_chunk.items()
        if t in visible and request_.admits(tenant, t)
    }, f"{where}: chunks outside the readable, requested, filtered set"

    if entry == "term_statistics":
        own = len(world.chunks_of(tenant)) if tenant in visible else 0
        assert outcome.frequency == own, f"{where}: canary counted {outcome.frequency}"
        everything = sum(len(world.chunks_of(t)) for t in visible)
        assert outcome.chunk_count == everything, f"{where}: chunks of other tenants"
        return
    # Positive control: what the user may read and asked for comes back.
    if tenant in visible:
        found = {found for text in outcome.texts for found in CANARY.findall(text)}
        assert tenant in found, f"{where}: the reader's own canary was not found"
    if entry == "search_scope":
        assert outcome.collection_ids == visible_ids, where


def test_building_the_matrix_leaves_no_task_on_the_queue(world):
    """The committed uploads' ingest tasks ran in this process, not later."""
    assert world.messages_left == 0


def test_the_matrix_covers_every_kind_of_reader(world):
    """Guard the fixture: each user reads exactly what READABLE says."""
    for who, readable in READABLE.items():
        scope = set(search_scope(user=world.users[who]).values_list("pk", flat=True))
        assert scope == {world.collections[t].pk for t in readable}, who


# --- The SQL carries the access predicate -------------------------------------------------

READS_CONTENT = re.compile(
    r"\b(documents_chunk|documents_chunksentence|retrieval_lexiconterm"
    r"|retrieval_collectionlexicon)\b"
)
READS_COLLECTIONS = re.compile(r"\bdocuments_collection\b")


def access_predicate(sql: str, user_id: int) -> bool:
    """The reader-group join, restricted to this user's memberships."""
    if '"documents_collection_reader_groups"' not in sql:
        return False
    aliases = re.findall(r'"auth_user_groups"(?: AS)? (\w+)', sql)
    return any(
        re.search(rf'\b{alias}\."user_id" = {user_id}\b', sql) for alias in aliases
    ) or bool(re.search(rf'"auth_user_groups"\."user_id" = {user_id}\b', sql))


def reads(world, who: str, entry: str) -> list[str]:
    """The SQL an entry point runs that reads what the access rule guards.

    Asked with forged ids (and a filter). Passages and statistics for every
    entry point; for search_scope, which returns collections, those.
    """
    call, _, requests = ENTRY_POINTS[entry]
    with CaptureQueriesContext(connection) as queries:
        call(world, world.users[who], "alpha", requests[-1])
    guarded = READS_COLLECTIONS if entry == "search_scope" else READS_CONTENT
    return [q["sql"] for q in queries.captured_queries if guarded.search(q["sql"])]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("who", GROUP_USERS)
def test_every_query_reading_passages_or_statistics_has_the_access_predicate(
    world, who, entry
):
    user_id = world.users[who].pk
    reading = reads(world, who, entry)
    assert reading, f"{entry} read nothing at all"
    for sql in reading:
        assert access_predicate(sql, user_id), (
            f"{who} x {entry}: no predicate in\n{sql}"
        )


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("who", ["inactive_alpha", "inactive_superuser", "anonymous"])
def test_users_who_may_read_nothing_cause_no_read_at_all(world, who, entry):
    """Their scope is empty before any SQL: nothing is fetched, scored or counted."""
    assert reads(world, who, entry) == []


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("who", GROUP_USERS)
def test_the_plan_of_every_query_applies_the_access_filter(world, who, entry):
    user_id = world.users[who].pk
    reading = [sql for sql in reads(world, who, entry) if sql.startswith("SELECT")]
    assert reading
    for sql in reading:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (VERBOSE, COSTS OFF) {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "auth_user_groups" in plan, plan
        assert "documents_collection_reader_groups" in plan, plan
        assert re.search(rf"\buser_id = {user_id}\b", plan), plan
