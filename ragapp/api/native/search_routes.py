"""POST /api/search: the passages a query finds, with their pages."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from ragapp.api.native.schemas import SearchIn, SearchOut, error_responses
from ragapp.api.native.search import passages_search_for
from ragapp.api.native.shapes import passage_out

router = Router(tags=["search"])


@router.post(
    "/search",
    response={200: SearchOut, **error_responses(404, 503)},
    summary="Search passages",
)
def search(request: HttpRequest, body: SearchIn) -> dict:
    """Hybrid search (words and meaning) over what this key may read, best first.

    A filter outside the grammar is a 400 whose `param` is its path, e.g.
    `filters.filters[1].type`.
    """
    passages = passages_search_for(
        caller=request.auth,
        query=body.query,
        collection_ids=body.collection_ids,
        filters=body.filters,
        limit=body.limit,
    )
    return {"data": [passage_out(p) for p in passages]}
