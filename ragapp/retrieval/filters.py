"""OpenAI vector-store search filters, translated into a `Q` on `Document`.

The grammar is OpenAI's `ComparisonFilter` / `CompoundFilter` (see the OpenAPI
spec): ``{"type": "eq", "key": "author", "value": "Ada"}`` and
``{"type": "and", "filters": [...]}``. Keys name entries of
`Document.attributes`, a jsonb object of free-form key/values.

Everything becomes SQL through the ORM: the attribute is read with
``jsonb_extract_path(attributes, %s)``, the key bound as a parameter. Keys are
never part of a lookup path (``attributes__<key>``), because Django would read
``a__b`` as a nested path and ``"1"`` as an array index; here every key,
quotes, dots and ``__`` included, is one literal top-level key.

Semantics (where the OpenAI spec is silent, the choice is stated):

* ``eq`` / ``in`` compare JSON values exactly and type-aware: the string
  ``"1"`` is not the number ``1``, ``true`` is not ``1``; ``1`` equals ``1.0``
  (jsonb compares numbers numerically). An array attribute never equals a
  scalar (no containment tricks).
* ``ne`` / ``nin`` are the negations of ``eq`` / ``in``: a document *lacking*
  the key matches them (the spec is silent; we chose this because "not equal
  to X" is true of a document that has no value at all).
* ``gt`` / ``gte`` / ``lt`` / ``lte`` pick their domain by the type of
  ``value``: a number compares numerically with attributes that are JSON
  numbers, a string compares by code point (``COLLATE "C"``, so results do not
  depend on the database locale) with attributes that are JSON strings. Any
  other attribute type, or a missing key, does not match. Booleans are refused
  for ranges: there is no useful order on them.
* ``in`` / ``nin`` take a list of strings/numbers (no booleans, as in the
  spec); an empty list is allowed: ``in []`` matches nothing, ``nin []``
  everything.
* ``and`` / ``or`` need at least one filter (spec silent; an empty ``or``
  would otherwise silently match everything).
* Unknown fields in a filter object are refused (the spec says
  ``additionalProperties: false``), and ``type`` is required.

Depth and size are capped so a hostile request cannot build a huge query.
"""

from __future__ import annotations

import math
import operator
from functools import reduce
from typing import Any

from django.db.models import F, Func, JSONField, Q, TextField, Value
from django.db.models.fields.json import DataContains
from django.db.models.functions import Collate
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Lookup,
)

MAX_DEPTH = 8
"""Compound filters nested deeper than this are refused."""
MAX_COMPARISONS = 64
"""Comparison filters in one request, all levels together."""
MAX_KEY_LENGTH = 256
MAX_LIST_ITEMS = 100
MAX_STRING_LENGTH = 4096
"""Bounds the size of one bound parameter; attribute values are far shorter."""

COMPARISON_TYPES = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"})
COMPOUND_TYPES = frozenset({"and", "or"})
_RANGE_LOOKUPS: dict[str, type[Lookup]] = {
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}
_COMPARISON_FIELDS = frozenset({"type", "key", "value"})
_COMPOUND_FIELDS = frozenset({"type", "filters"})


class FilterError(ValueError):
    """A filter the API refuses; the message is safe to show to the caller.

    It names the offending part as a path from the request body, e.g.
    ``filters.filters[1].type: unknown operator 'like'``, and never echoes
    more than a short excerpt of what was sent.
    """


def document_filter_q(filters: dict | None, *, prefix: str = "") -> Q:
    """Translate an OpenAI search filter into a `Q` on `Document` fields.

    `prefix` is prepended to field names (e.g. ``"document__"``) so that the
    same filter can be applied to `Chunk` querysets through the relation.
    ``None`` or ``{}`` means no filter and gives an empty ``Q()``.
    Raises `FilterError` for anything outside the grammar or the caps.
    """
    if filters is None:
        return Q()
    if not isinstance(filters, dict):
        raise FilterError("filters: must be an object")
    if not filters:
        return Q()
    budget = _Budget()
    return _node_q(filters, "filters", depth=0, budget=budget, prefix=prefix)


class _Budget:
    """Counts comparisons as they are built, so a huge request fails early."""

    def __init__(self) -> None:
        self.comparisons = 0

    def spend(self, path: str) -> None:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise FilterError(
                f"{path}: too many comparisons (at most {MAX_COMPARISONS})"
            )


def _short(value: Any) -> str:
    """A bounded repr for messages: callers see what was wrong, not a wall."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _node_q(node: Any, path: str, *, depth: int, budget: _Budget, prefix: str) -> Q:
    if not isinstance(node, dict):
        raise FilterError(f"{path}: must be an object")
    if "type" not in node:
        raise FilterError(f"{path}.type: required")
    kind = node["type"]
    if not isinstance(kind, str):
        raise FilterError(f"{path}.type: must be a string")
    if kind in COMPOUND_TYPES:
        return _compound_q(node, kind, path, depth=depth, budget=budget, prefix=prefix)
    if kind in COMPARISON_TYPES:
        budget.spend(path)
        return _comparison_q(node, kind, path, prefix=prefix)
    raise FilterError(f"{path}.type: unknown operator {_short(kind)}")


def _check_fields(node: dict, allowed: frozenset[str], path: str) -> None:
    for name in node:
        if name not in allowed:
            raise FilterError(f"{path}: unknown field {_short(name)}")
    for name in sorted(allowed):
        if name not in node:
            raise FilterError(f"{path}.{name}: required")


def _compound_q(
    node: dict, kind: str, path: str, *, depth: int, budget: _Budget, prefix: str
) -> Q:
    _check_fields(node, _COMPOUND_FIELDS, path)
    if depth + 1 > MAX_DEPTH:
        raise FilterError(f"{path}: nested too deeply (at most {MAX_DEPTH} levels)")
    children = node["filters"]
    if not isinstance(children, list):
        raise FilterError(f"{path}.filters: must be a list")
    if not children:
        raise FilterError(f"{path}.filters: must contain at least one filter")
    parts = [
        _node_q(
            child,
            f"{path}.filters[{index}]",
            depth=depth + 1,
            budget=budget,
            prefix=prefix,
        )
        for index, child in enumerate(children)
    ]
    return reduce(operator.and_ if kind == "and" else operator.or_, parts)


def _is_number(value: Any) -> bool:
    # bool is an int subclass in Python but a distinct JSON type.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not (isinstance(value, float) and not math.isfinite(value))
    )


def _check_scalar(value: Any, path: str, *, allow_bool: bool) -> None:
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise FilterError(
                f"{path}: string longer than {MAX_STRING_LENGTH} characters"
            )
        return
    if isinstance(value, bool):
        if allow_bool:
            return
        raise FilterError(f"{path}: must be a string or a number, not a boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"{path}: numbers must be finite")
    if _is_number(value):
        return
    expected = (
        "a string, a number or a boolean" if allow_bool else "a string or a number"
    )
    raise FilterError(f"{path}: must be {expected}, not {type(value).__name__}")


def _comparison_q(node: dict, kind: str, path: str, *, prefix: str) -> Q:
    _check_fields(node, _COMPARISON_FIELDS, path)
    key = node["key"]
    if not isinstance(key, str) or not key:
        raise FilterError(f"{path}.key: must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise FilterError(f"{path}.key: longer than {MAX_KEY_LENGTH} characters")
    value = node["value"]
    value_path = f"{path}.value"
    attribute = _attribute(prefix, key)

    if kind in ("in", "nin"):
        if not isinstance(value, list):
            raise FilterError(f"{value_path}: '{kind}' takes a list")
        if len(value) > MAX_LIST_ITEMS:
            raise FilterError(f"{value_path}: at most {MAX_LIST_ITEMS} items in a list")
        for index, item in enumerate(value):
            _check_scalar(item, f"{value_path}[{index}]", allow_bool=False)
        # [v1, v2, ...] @> [attribute]: jsonb containment is exact and
        # type-aware for scalars; a missing key gives [null], never contained.
        member = Q(
            DataContains(
                Value(value, output_field=JSONField()),
                Func(attribute, function="jsonb_build_array", output_field=JSONField()),
            )
        )
        return member if kind == "in" else ~member

    if isinstance(value, list):
        raise FilterError(f"{value_path}: only 'in' and 'nin' take a list")
    _check_scalar(value, value_path, allow_bool=True)

    if kind in ("eq", "ne"):
        # jsonb = jsonb: exact and type-aware; NULL (missing key) never equals.
        equal = Q(Exact(attribute, Value(value, output_field=JSONField())))
        if kind == "eq":
            return equal
        # NOT (NULL) is NULL, so the missing key must be let in explicitly.
        return ~equal | Q(IsNull(attribute, True))

    lookup = _RANGE_LOOKUPS[kind]
    if isinstance(value, bool):
        raise FilterError(f"{value_path}: '{kind}' takes a number or a string")
    if isinstance(value, str):
        text = Func(
            F(f"{prefix}attributes"),
            Value(key, output_field=TextField()),
            function="jsonb_extract_path_text",
            output_field=TextField(),
        )
        return Q(_json_type_is(attribute, "string")) & Q(
            lookup(Collate(text, "C"), Value(value, output_field=TextField()))
        )
    # jsonb orders numbers numerically; the type guard keeps other JSON types
    # (which jsonb orders before/after all numbers) out. No cast, so no cast
    # error whatever order PostgreSQL evaluates the two conditions in.
    return Q(_json_type_is(attribute, "number")) & Q(
        lookup(attribute, Value(value, output_field=JSONField()))
    )


def _attribute(prefix: str, key: str) -> Func:
    """``jsonb_extract_path(attributes, key)``: the key is a bound parameter."""
    return Func(
        F(f"{prefix}attributes"),
        Value(key, output_field=TextField()),
        function="jsonb_extract_path",
        output_field=JSONField(),
    )


def _json_type_is(attribute: Func, json_type: str) -> Exact:
    return Exact(
        Func(attribute, function="jsonb_typeof", output_field=TextField()),
        Value(json_type, output_field=TextField()),
    )
