"""POST /api/search, and the one error shape for every way a request fails."""

from __future__ import annotations

import pytest

from ragapp.documents.models import Document
from tests.api.native.conftest import assert_error
from tests.factories import indexed_document

pytestmark = pytest.mark.django_db

MEALS = "How much are meal expenses refunded per day?"


def test_search_returns_passages_with_their_document_and_pages(
    staff_api, handbook, garden
):
    response = staff_api.post("/search", json={"query": MEALS, "limit": 3})
    assert response.status_code == 200, response.text
    passages = response.json()["data"]
    assert passages and len(passages) <= 3
    best = passages[0]
    assert "35 euros" in best["text"]
    document = Document.objects.get(collection=handbook)
    assert best["document_id"] == document.pk
    assert best["title"] == document.title
    assert best["collection_id"] == handbook.pk
    assert {"page_start", "page_end", "score", "chunk_id"} <= set(best)
    assert all(p["collection_id"] == handbook.pk for p in passages)


def test_search_in_another_groups_collection_is_a_404(staff_api, handbook, garden):
    error = assert_error(
        staff_api.post(
            "/search",
            json={"query": "roses", "collection_ids": [handbook.pk, garden.pk]},
        ),
        404,
        "not_found",
    )
    assert error["param"] == "collection_ids[1]"


def test_search_honours_attribute_filters(staff_api, handbook):
    newer = indexed_document(
        handbook,
        "meals-2027.md",
        "# Meals\n\nFrom 2027 meal expenses are refunded up to 40 euros a day.\n",
        attributes={"year": 2027},
    )
    response = staff_api.post(
        "/search",
        json={"query": MEALS, "filters": {"type": "eq", "key": "year", "value": 2027}},
    )
    assert {p["document_id"] for p in response.json()["data"]} == {newer.pk}


def test_a_bad_filter_is_a_400_naming_its_path(staff_api, handbook):
    error = assert_error(
        staff_api.post(
            "/search",
            json={
                "query": MEALS,
                "filters": {
                    "type": "and",
                    "filters": [
                        {"type": "eq", "key": "year", "value": 1},
                        {"type": "like", "key": "year", "value": 1},
                    ],
                },
            },
        ),
        400,
        "invalid_request",
    )
    assert error["param"] == "filters.filters[1].type"


def test_no_key_is_a_401_in_the_native_shape(api, handbook):
    assert_error(api(None).get("/collections"), 401, "missing_api_key")
    assert_error(api("rag_" + "x" * 43).get("/collections"), 401, "invalid_api_key")


def test_a_revoked_key_is_a_401(api, make_key, staff, handbook):
    from ragapp.api.keys import apikey_revoke

    issued = make_key(staff)
    client = api(issued.secret)
    assert client.get("/collections").status_code == 200
    apikey_revoke(key=issued.key)
    assert_error(client.get("/collections"), 401)


def test_validation_errors_are_400s_naming_the_field(staff_api, handbook):
    error = assert_error(staff_api.post("/search", json={"limit": 3}), 400)
    assert error["param"] == "query"
    error = assert_error(
        staff_api.post("/search", json={"query": "x", "limit": 0}), 400
    )
    assert error["param"] == "limit"
    error = assert_error(
        staff_api.post(
            "/search",
            content=b"{not json",
            headers={"content-type": "application/json"},
        ),
        400,
    )
    assert "parse" in error["message"]
    error = assert_error(staff_api.get("/collections/abc"), 400)
    assert error["param"] == "collection_id"


def test_an_unknown_route_and_a_wrong_method_are_json(staff_api, handbook):
    assert_error(staff_api.get("/nothing/here"), 404, "not_found")
    assert_error(staff_api.get("/"), 404, "not_found")
    assert_error(staff_api.put("/search", json={}), 405, "method_not_allowed")


def test_the_schema_and_the_docs_need_no_key(api, db):
    client = api(None)
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/collections/{collection_id}/documents" in paths
    assert "/api/ask" in paths
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger-ui-bundle" in docs.text
    policy = docs.headers["content-security-policy"]
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    assert docs.text.count(f'nonce="{nonce}"') == 3
