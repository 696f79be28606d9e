"""OpenAI's cursor pages: `limit`, `order`, `after`, `before`, `has_more`.

The SDK's `SyncCursorPage` asks for `?after=<id of the last item>` while
`has_more` is true (WIRE.md §0). Items are ordered by `created_at`, then by
primary key, so rows made in the same instant still page without gaps or
repeats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from django.db.models import Model, Q, QuerySet
from django.utils.translation import gettext as _

from ragapp.api.exceptions import ApiError

Order = Literal["asc", "desc"]


def _beyond(row: Model, *, later: bool) -> Q:
    """Rows after `row` in (created_at, pk) order when `later`, before it otherwise."""
    if later:
        return Q(created_at__gt=row.created_at) | Q(
            created_at=row.created_at, pk__gt=row.pk
        )
    return Q(created_at__lt=row.created_at) | Q(
        created_at=row.created_at, pk__lt=row.pk
    )


def cursor_page(
    rows: QuerySet,
    *,
    limit: int,
    order: Order,
    after: str | None,
    before: str | None = None,
    shape: Callable[[Any], dict[str, Any]],
    id_field: str = "public_id",
) -> dict[str, Any]:
    """One page of `rows` as `{"object": "list", data, first_id, last_id, has_more}`.

    `after`/`before` name an item of `rows` itself; an id that is not there
    is a 400 naming the parameter. `first_id`/`last_id` are strings, as the
    spec's list schemas require, and empty on an empty page.
    """
    ascending = order == "asc"
    for param, cursor, later in (
        ("after", after, ascending),
        ("before", before, not ascending),
    ):
        if not cursor:
            continue
        anchor = rows.filter(**{id_field: cursor}).first()
        if anchor is None:
            raise ApiError(
                _("'%(param)s' names no object of this list: %(id)s")
                % {"param": param, "id": cursor},
                param=param,
            )
        rows = rows.filter(_beyond(anchor, later=later))
    if before and not after:
        # Take the `limit` rows nearest the cursor, then put them back in order.
        nearest = list(
            rows.order_by(
                *(("-created_at", "-pk") if ascending else ("created_at", "pk"))
            )[: limit + 1]
        )
        has_more = len(nearest) > limit
        items = list(reversed(nearest[:limit]))
    else:
        ordered = rows.order_by(
            *(("created_at", "pk") if ascending else ("-created_at", "-pk"))
        )
        items = list(ordered[: limit + 1])
        has_more = len(items) > limit
        items = items[:limit]
    data = [shape(item) for item in items]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else "",
        "last_id": data[-1]["id"] if data else "",
        "has_more": has_more,
    }
