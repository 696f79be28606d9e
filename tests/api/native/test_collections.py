"""/api/collections: list with pages, create and update for admins only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from ragapp.documents.models import Collection
from tests.api.native.conftest import assert_error
from tests.factories import CollectionFactory

pytestmark = pytest.mark.django_db


def test_staff_list_only_the_collections_they_may_read(staff_api, handbook, garden):
    response = staff_api.get("/collections")
    assert response.status_code == 200
    body = response.json()
    assert [c["slug"] for c in body["data"]] == ["handbook"]
    assert body["next_cursor"] is None
    [collection] = body["data"]
    assert collection["document_count"] == collection["ready_count"] == 1
    # Who may read it is for admins to see.
    assert collection["reader_groups"] is None


def test_the_list_pages_by_cursor_without_repeats(api, make_key, boss, db):
    names = [f"Collection {n:02}" for n in range(7)]
    for name in reversed(names):
        CollectionFactory(name=name)
    client = api(make_key(boss).secret)
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = client.get("/collections", params=params).json()
        seen += [c["name"] for c in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == names


def test_a_forged_cursor_is_a_400_naming_it(staff_api, handbook):
    error = assert_error(staff_api.get("/collections", params={"cursor": "x"}), 400)
    assert error["param"] == "cursor"


def test_a_scoped_key_lists_its_collections_alone(
    api, make_key, staff, handbook, readers
):
    other = CollectionFactory(name="Other", slug="other")
    other.reader_groups.add(readers)
    client = api(make_key(staff, collections=[other]).secret)
    assert [c["slug"] for c in client.get("/collections").json()["data"]] == ["other"]
    assert_error(client.get(f"/collections/{handbook.pk}"), 404, "not_found")


def test_another_groups_collection_is_a_404_like_a_missing_one(
    staff_api, handbook, garden
):
    hidden = assert_error(staff_api.get(f"/collections/{garden.pk}"), 404)
    missing = assert_error(staff_api.get("/collections/999999"), 404)
    assert hidden["code"] == missing["code"] == "not_found"
    assert staff_api.get(f"/collections/{handbook.pk}").json()["name"] == "Handbook"


def test_an_admin_creates_a_collection_with_its_readers(boss_api, readers):
    response = boss_api.post(
        "/collections",
        json={
            "name": "Policies 2027",
            "description": "What changed.",
            "reader_group_ids": [readers.pk],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["slug"] == "policies-2027"
    assert body["reader_groups"] == [{"id": readers.pk, "name": readers.name}]
    collection = Collection.objects.get(pk=body["id"])
    assert list(collection.reader_groups.all()) == [readers]


def test_a_taken_slug_is_a_409_and_an_unknown_group_a_400(boss_api, handbook):
    error = assert_error(
        boss_api.post("/collections", json={"name": "Again", "slug": "handbook"}), 409
    )
    assert error["param"] == "slug"
    error = assert_error(
        boss_api.post("/collections", json={"name": "X", "reader_group_ids": [0]}),
        400,
    )
    assert error["param"] == "reader_group_ids[0]"


def test_unknown_fields_are_refused_not_assigned(boss_api):
    error = assert_error(
        boss_api.post("/collections", json={"name": "X", "created_by": 1}), 400
    )
    assert error["param"] == "created_by"
    assert not Collection.objects.filter(name="X").exists()


def test_staff_may_not_create_or_update(staff_api, handbook):
    assert_error(staff_api.post("/collections", json={"name": "Mine"}), 403)
    assert_error(
        staff_api.patch(f"/collections/{handbook.pk}", json={"name": "Mine"}), 403
    )
    assert Collection.objects.get(pk=handbook.pk).name == "Handbook"


def test_an_admin_updates_name_and_access_and_keeps_the_rest(
    boss_api, handbook, readers
):
    auditors = Group.objects.create(name="Auditors")
    response = boss_api.patch(
        f"/collections/{handbook.pk}",
        json={"name": "Staff handbook", "reader_group_ids": [auditors.pk]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Staff handbook"
    assert body["reader_groups"] == [{"id": auditors.pk, "name": "Auditors"}]
    handbook.refresh_from_db()
    assert handbook.slug == "handbook" and handbook.description == ""
    assert list(handbook.reader_groups.all()) == [auditors]


def test_a_read_only_key_may_not_write(api, make_key, boss):
    client = api(make_key(boss, read_only=True).secret)
    error = assert_error(client.post("/collections", json={"name": "RO"}), 403)
    assert "read-only" in error["message"]


def test_a_scoped_key_may_not_create_collections(api, make_key, boss, handbook):
    client = api(make_key(boss, collections=[handbook]).secret)
    error = assert_error(client.post("/collections", json={"name": "Out"}), 403)
    assert "limited to some collections" in error["message"]
