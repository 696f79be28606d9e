"""/v1/vector_stores through the official SDK and a real Celery worker.

A vector store is a collection and its files are documents: the SDK's poll
helpers wait on the pipeline's real states (queued, parsing, embedding are
`in_progress`). Tests commit (transaction=True) so the worker sees their
rows; the caller is a superuser, since the transactional flush drops the
role groups. Replies are checked against OpenAI's published schema too.
"""

from __future__ import annotations

import io

import openai
import pytest

from ragapp.api.models import VectorStore
from ragapp.documents.models import Collection, Document
from tests.api.openai_schema import assert_conforms
from tests.factories import CollectionFactory, UserFactory

pytestmark = [
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

PARKING = b"# Parking\n\nStaff park on level 2 of the north garage.\n"
CANTEEN = b"# Canteen\n\nThe canteen serves soup on Mondays and fish on Fridays.\n"
TRAVEL = b"# Travel\n\nTrain tickets are refunded in second class only.\n"
CORRUPT_PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nthis is not a pdf"


@pytest.fixture(autouse=True)
def shared_media(settings, celery_worker):
    settings.MEDIA_ROOT = celery_worker.media_root


@pytest.fixture
def root(db):
    return UserFactory(username="root", is_superuser=True)


@pytest.fixture
def root_sdk(sdk, make_key, root) -> openai.OpenAI:
    return sdk(make_key(root).secret)


def poll(client: openai.OpenAI, store_id: str, data: bytes, name: str, **attributes):
    return client.vector_stores.files.upload_and_poll(
        vector_store_id=store_id,
        file=(name, io.BytesIO(data)),
        attributes=attributes or openai.omit,
        poll_interval_ms=200,
    )


def test_a_store_is_made_filled_searched_and_deleted(root_sdk):
    raw = root_sdk.vector_stores.with_raw_response.create(
        name="Office", metadata={"owner": "facilities"}
    )
    assert_conforms("VectorStoreObject", raw.http_response.json())
    store = raw.parse()
    assert store.id.startswith("vs_") and store.name == "Office"
    assert Collection.objects.get(vector_store__public_id=store.id).name == "Office"

    parking = poll(root_sdk, store.id, PARKING, "parking.md", team="facilities")
    assert parking.status == "completed", parking.last_error
    assert parking.last_error is None
    assert parking.attributes == {"team": "facilities"}
    canteen = poll(root_sdk, store.id, CANTEEN, "canteen.md", team="kitchen")
    assert canteen.status == "completed"

    retrieved = root_sdk.vector_stores.with_raw_response.retrieve(store.id)
    assert_conforms("VectorStoreObject", retrieved.http_response.json())
    counts = retrieved.parse().file_counts
    assert (counts.completed, counts.total, counts.in_progress) == (2, 2, 0)

    files = root_sdk.vector_stores.files.with_raw_response.list(store.id)
    assert_conforms("ListVectorStoreFilesResponse", files.http_response.json())
    assert files.http_response.headers["openai-poll-after-ms"]
    assert {f.id for f in files.parse()} == {parking.id, canteen.id}

    search = root_sdk.vector_stores.with_raw_response.search(
        store.id, query="where do staff park?"
    )
    assert_conforms("VectorStoreSearchResultsPage", search.http_response.json())
    results = search.parse().data
    assert results[0].file_id == parking.id
    assert results[0].filename == "parking.md"
    assert "level 2" in results[0].content[0].text
    assert all(0 < r.score < 1 for r in results)
    assert [r.score for r in results] == sorted(
        (r.score for r in results), reverse=True
    )
    assert results[0].attributes["team"] == "facilities"
    assert "page_start" not in results[0].attributes  # a note has no pages

    content = root_sdk.vector_stores.files.content(parking.id, vector_store_id=store.id)
    assert "north garage" in " ".join(part.text for part in content)

    updated = root_sdk.vector_stores.update(store.id, name="Office FAQ")
    assert updated.name == "Office FAQ" and updated.metadata == {"owner": "facilities"}

    root_sdk.vector_stores.files.delete(canteen.id, vector_store_id=store.id)
    assert not Document.objects.filter(original_filename="canteen.md").exists()
    deleted = root_sdk.vector_stores.with_raw_response.delete(store.id)
    assert_conforms("DeleteVectorStoreResponse", deleted.http_response.json())
    assert not Collection.objects.filter(name="Office FAQ").exists()
    with pytest.raises(openai.NotFoundError):
        root_sdk.vector_stores.retrieve(store.id)


def test_search_honours_filters_threshold_and_max_results(root_sdk):
    store = root_sdk.vector_stores.create(name="Policies")
    for name, data, team, year in (
        ("parking.md", PARKING, "facilities", 2023),
        ("canteen.md", CANTEEN, "kitchen", 2024),
        ("travel.md", TRAVEL, "finance", 2024),
    ):
        assert poll(root_sdk, store.id, data, name, team=team, year=year).status == (
            "completed"
        )

    def names(query: str = "staff", **options) -> list[str]:
        page = root_sdk.vector_stores.search(store.id, query=query, **options)
        return [result.filename for result in page.data]

    assert set(names()) == {"parking.md", "canteen.md", "travel.md"}
    assert names(filters={"type": "eq", "key": "team", "value": "kitchen"}) == [
        "canteen.md"
    ]
    both = {
        "type": "and",
        "filters": [
            {"type": "gte", "key": "year", "value": 2024},
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "team", "value": "finance"},
                    {"type": "eq", "key": "team", "value": "facilities"},
                ],
            },
        ],
    }
    assert names(filters=both) == ["travel.md"]
    assert len(names(max_num_results=1)) == 1
    everything = root_sdk.vector_stores.search(store.id, query="soup on Mondays")
    threshold = everything.data[0].score
    kept = names(
        query="soup on Mondays", ranking_options={"score_threshold": threshold}
    )
    assert kept == ["canteen.md"]

    with pytest.raises(openai.BadRequestError) as caught:
        names(filters={"type": "and", "filters": [{"type": "near", "key": "a"}]})
    assert caught.value.param.startswith("filters")
    with pytest.raises(openai.BadRequestError) as caught:
        names(filters={"type": "gt", "key": "year", "value": True})
    assert caught.value.param.startswith("filters")


def test_a_corrupt_pdf_fails_with_last_error(root_sdk):
    store = root_sdk.vector_stores.create(name="Scans")
    failed = poll(root_sdk, store.id, CORRUPT_PDF, "broken.pdf")
    assert failed.status == "failed"
    assert failed.last_error.code == "invalid_file"
    assert "damaged" in failed.last_error.message
    counts = root_sdk.vector_stores.retrieve(store.id).file_counts
    assert (counts.failed, counts.completed) == (1, 0)
    listed = root_sdk.vector_stores.files.list(store.id, filter="failed")
    assert [f.id for f in listed] == [failed.id]


def test_a_batch_of_three_files_counts_three_completed(root_sdk):
    store = root_sdk.vector_stores.create(name="Batch")
    raw = root_sdk.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[
            ("parking.md", io.BytesIO(PARKING)),
            ("canteen.md", io.BytesIO(CANTEEN)),
            ("travel.md", io.BytesIO(TRAVEL)),
        ],
        poll_interval_ms=200,
    )
    assert raw.id.startswith("vsfb_")
    assert raw.status == "completed"
    assert (raw.file_counts.completed, raw.file_counts.total) == (3, 3)
    batch = root_sdk.vector_stores.file_batches.with_raw_response.retrieve(
        raw.id, vector_store_id=store.id
    )
    assert_conforms("VectorStoreFileBatchObject", batch.http_response.json())
    listed = root_sdk.vector_stores.file_batches.list_files(
        raw.id, vector_store_id=store.id
    )
    assert len(list(listed)) == 3


def test_another_users_store_is_not_found_and_a_plain_user_cannot_create(
    root_sdk, sdk, make_key
):
    store = root_sdk.vector_stores.create(name="Private")
    stranger = sdk(make_key(UserFactory(username="stranger")).secret)
    with pytest.raises(openai.NotFoundError):
        stranger.vector_stores.retrieve(store.id)
    with pytest.raises(openai.NotFoundError):
        stranger.vector_stores.search(store.id, query="anything")
    with pytest.raises(openai.NotFoundError):
        stranger.vector_stores.delete(store.id)
    assert store.id not in [s.id for s in stranger.vector_stores.list()]
    with pytest.raises(openai.PermissionDeniedError):
        stranger.vector_stores.create(name="Mine")
    assert VectorStore.objects.filter(public_id=store.id).exists()


def test_collections_made_in_the_web_pages_are_stores_too(root_sdk):
    collection = CollectionFactory(name="Handbook", slug="handbook")
    stores = {s.name: s for s in root_sdk.vector_stores.list()}
    assert stores["Handbook"].id == collection.vector_store.public_id


def test_the_real_eval_pdfs_are_indexed_searched_with_page_ranges(root_sdk, eval_pdfs):
    store = root_sdk.vector_stores.create(name="Standards")
    uploaded = root_sdk.files.create(
        file=("NIST.SP.800-207.pdf", (eval_pdfs / "NIST.SP.800-207.pdf").read_bytes()),
        purpose="assistants",
    )
    attached = root_sdk.vector_stores.files.create_and_poll(
        uploaded.id, vector_store_id=store.id, poll_interval_ms=500
    )
    assert attached.status == "completed", attached.last_error
    assert attached.id == uploaded.id
    page = root_sdk.vector_stores.search(
        store.id, query="policy enforcement point", max_num_results=5
    )
    assert page.data, "no results"
    for result in page.data:
        assert result.file_id == uploaded.id
        assert result.filename == "NIST.SP.800-207.pdf"
        start, end = result.attributes["page_start"], result.attributes["page_end"]
        assert 1 <= start <= end <= 60
    assert any("enforcement" in r.content[0].text.lower() for r in page.data)

    # A second real PDF through a batch, then a question over both.
    batch = root_sdk.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[
            ("cidr2021_paper17.pdf", (eval_pdfs / "cidr2021_paper17.pdf").read_bytes())
        ],
        poll_interval_ms=500,
    )
    assert batch.file_counts.completed == 1, batch.file_counts
    answer = root_sdk.responses.create(
        model="ragapp-extractive",
        input="What is a lakehouse?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
        include=["file_search_call.results"],
    )
    call, message = answer.output
    assert call.type == "file_search_call" and call.results
    for result in call.results:
        assert result.filename in ("NIST.SP.800-207.pdf", "cidr2021_paper17.pdf")
        assert 1 <= result.attributes["page_start"] <= result.attributes["page_end"]
    annotations = message.content[0].annotations
    assert annotations, answer.output_text
    assert {a.filename for a in annotations} == {"cidr2021_paper17.pdf"}
    text = message.content[0].text
    assert all(0 < a.index <= len(text) for a in annotations)
    assert "lakehouse" in answer.output_text.lower()
