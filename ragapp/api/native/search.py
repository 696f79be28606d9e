"""Search for an API caller: `chunk_search` over what the key may read."""

from __future__ import annotations

from django.utils.translation import gettext as _

from ragapp.api.callers import Caller
from ragapp.api.exceptions import ApiError, UnavailableError
from ragapp.api.native.selectors import collections_named
from ragapp.providers.exceptions import ProviderError
from ragapp.retrieval.filters import FilterError, document_filter_q
from ragapp.retrieval.search import Passage, chunk_search


def filters_check(filters: dict | None) -> None:
    """Refuse a filter outside the grammar with a 400 naming its path."""
    try:
        document_filter_q(filters)
    except FilterError as exc:
        raise ApiError(str(exc), param=str(exc).split(":", 1)[0]) from None


def passages_search_for(
    *,
    caller: Caller,
    query: str,
    collection_ids: list[int] | None,
    filters: dict | None,
    limit: int,
) -> list[Passage]:
    """The best passages for `query` the caller may read.

    Access is part of the search's SQL (chunk_search); the named collections
    are checked first only so that one the caller may not read is a 404, as
    an unknown one is, instead of an empty result.
    """
    wanted = collections_named(caller=caller, collection_ids=collection_ids)
    filters_check(filters)
    try:
        return chunk_search(
            user=caller.user,
            query=query,
            collection_ids=caller.scope(wanted),
            filters=filters,
            limit=limit,
        )
    except ProviderError as exc:
        raise UnavailableError(
            _("The search could not embed the query: %(reason)s Try again in a minute.")
            % {"reason": exc}
        ) from exc
