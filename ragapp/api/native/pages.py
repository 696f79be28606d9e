"""Keyset pagination for every list: `?limit=&cursor=` → `{data, next_cursor}`.

A page ends where the next one starts: the cursor holds the ordering values
of the last item sent, so rows added or removed meanwhile never shift what
comes next (an OFFSET would repeat or skip them). Cursors are signed, per
list, so a client cannot forge one, nor hand one list's cursor to another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
from django.db import models
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from ninja import Schema
from pydantic import Field

from ragapp.api.exceptions import ApiError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class PageQuery(Schema):
    limit: int = Field(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page (1-100)."
    )
    cursor: str | None = Field(
        None,
        max_length=500,
        description="The `next_cursor` of the previous page; omit for the first.",
    )


@dataclass(frozen=True)
class Page:
    items: list[models.Model]
    next_cursor: str | None


def _field(model: type[models.Model], name: str) -> models.Field:
    return model._meta.pk if name == "pk" else model._meta.get_field(name)


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _decode(field: models.Field, value: Any) -> Any:
    if isinstance(field, models.DateTimeField):
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is None:
            raise ValueError(value)
        return parsed
    if isinstance(field, models.IntegerField | models.AutoField):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(value)
        return value
    if not isinstance(value, str):
        raise ValueError(value)
    return value


def _after(order: Sequence[str], values: Sequence[Any]) -> Q:
    """Rows strictly after `values` in `order` (every field the same direction)."""
    descending = order[0].startswith("-")
    names = [name.lstrip("-") for name in order]
    beyond = "lt" if descending else "gt"
    condition = Q()
    for index, name in enumerate(names):
        step = Q(**{f"{name}__{beyond}": values[index]})
        for earlier, value in zip(names[:index], values[:index], strict=True):
            step &= Q(**{earlier: value})
        condition |= step
    return condition


def keyset_page(
    rows: QuerySet,
    *,
    order: Sequence[str],
    limit: int,
    cursor: str | None,
    salt: str,
) -> Page:
    """One page of `rows` in `order`; `order` ends in a unique field (the pk).

    A cursor that does not verify is a 400 naming `cursor`.
    """
    if len({name.startswith("-") for name in order}) != 1:
        raise ValueError("keyset_page orders every field the same way")
    names = [name.lstrip("-") for name in order]
    fields = [_field(rows.model, name) for name in names]
    signer_salt = f"ragapp.api.native.pages:{salt}"
    if cursor:
        try:
            raw = signing.loads(cursor, salt=signer_salt)
            if not isinstance(raw, list) or len(raw) != len(fields):
                raise ValueError(raw)
            values = [_decode(f, v) for f, v in zip(fields, raw, strict=True)]
        except (signing.BadSignature, ValueError, TypeError):
            raise ApiError(
                _("The cursor is not valid here; use a list's own next_cursor."),
                param="cursor",
            ) from None
        rows = rows.filter(_after(order, values))
    items = list(rows.order_by(*order)[: limit + 1])
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = signing.dumps(
            [_encode(getattr(last, name)) for name in names],
            salt=signer_salt,
            compress=True,
        )
    return Page(items=items, next_cursor=next_cursor)
