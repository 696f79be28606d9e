"""/api/collections: list, create, retrieve, and update who may read them."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router, Status

from ragapp.api.native import selectors, services
from ragapp.api.native.pages import PageQuery, keyset_page
from ragapp.api.native.schemas import (
    CollectionCreate,
    CollectionOut,
    CollectionPage,
    CollectionUpdate,
    error_responses,
)
from ragapp.api.native.shapes import collection_out

router = Router(tags=["collections"])


@router.get(
    "/collections",
    response={200: CollectionPage, **error_responses()},
    summary="List collections",
)
def collections_list(request: HttpRequest, page: Query[PageQuery]) -> dict:
    """The collections this key may read, by name."""
    caller = request.auth
    rows = selectors.collection_list_for(caller=caller).prefetch_related(
        "reader_groups"
    )
    found = keyset_page(
        rows,
        order=("name", "pk"),
        limit=page.limit,
        cursor=page.cursor,
        salt="collections",
    )
    managed = selectors.manages_collections(caller)
    return {
        "data": [collection_out(c, managed=managed) for c in found.items],
        "next_cursor": found.next_cursor,
    }


@router.post(
    "/collections",
    response={201: CollectionOut, **error_responses(403, 409)},
    summary="Create a collection",
)
def collections_create(request: HttpRequest, body: CollectionCreate) -> Status:
    """Admins only; the key must not be limited to some collections."""
    caller = request.auth
    collection = services.collection_create_for(
        caller=caller,
        name=body.name,
        slug=body.slug,
        description=body.description,
        reader_group_ids=body.reader_group_ids,
    )
    fresh = selectors.access_collection(caller=caller, collection_id=collection.pk)
    return Status(201, collection_out(fresh, managed=True))


@router.get(
    "/collections/{collection_id}",
    response={200: CollectionOut, **error_responses(404)},
    summary="Retrieve a collection",
)
def collections_retrieve(request: HttpRequest, collection_id: int) -> dict:
    caller = request.auth
    collection = selectors.access_collection(caller=caller, collection_id=collection_id)
    return collection_out(collection, managed=selectors.manages_collections(caller))


@router.patch(
    "/collections/{collection_id}",
    response={200: CollectionOut, **error_responses(403, 404)},
    summary="Update a collection",
)
def collections_update(
    request: HttpRequest, collection_id: int, body: CollectionUpdate
) -> dict:
    """Rename it, describe it, or set its reader groups (who may read it). Admins only."""
    caller = request.auth
    collection = selectors.access_collection(caller=caller, collection_id=collection_id)
    services.collection_update_for(
        caller=caller,
        collection=collection,
        name=body.name,
        description=body.description,
        reader_group_ids=body.reader_group_ids,
    )
    fresh = selectors.access_collection(caller=caller, collection_id=collection_id)
    return collection_out(fresh, managed=True)
