"""OpenAI search filters → `Q` on `Document`, run against the real PostgreSQL."""

import pytest

from ragapp.documents.models import Chunk, Document
from ragapp.retrieval.filters import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    FilterError,
    document_filter_q,
)
from tests.factories import ChunkFactory, CollectionFactory, DocumentFactory

pytestmark = pytest.mark.django_db


HOSTILE_KEYS = [
    "a__b",
    "x'); drop table documents_document; --",
    'quo"te',
    "dot.ted",
    "1",
    "-1",
    "päth/ünicode ✓",
    "a->b",
    "%s",
    "{a,b}",
]


@pytest.fixture
def collection():
    return CollectionFactory()


@pytest.fixture
def make_doc(collection):
    def make(title: str, attributes: dict) -> Document:
        return DocumentFactory(
            collection=collection, title=title, attributes=attributes
        )

    return make


@pytest.fixture
def docs(make_doc):
    make_doc("str-a", {"author": "Ada", "year": 1843, "draft": False})
    make_doc("str-b", {"author": "Bob", "year": 1950.5, "draft": True})
    make_doc("str-1", {"author": "1", "year": "1950", "draft": 1})
    make_doc("num-1", {"author": 1, "year": 2001, "draft": "true"})
    make_doc("list", {"author": ["Ada", "Bob"], "year": [1843]})
    make_doc("obj", {"author": {"name": "Ada"}, "year": None})
    make_doc("empty", {})


def titles(filters, queryset=None) -> set[str]:
    queryset = Document.objects.all() if queryset is None else queryset
    return set(
        queryset.filter(document_filter_q(filters)).values_list("title", flat=True)
    )


def cmp(op: str, key: str, value) -> dict:
    return {"type": op, "key": key, "value": value}


ALL = {"str-a", "str-b", "str-1", "num-1", "list", "obj", "empty"}


# --- No filter -----------------------------------------------------------------


@pytest.mark.parametrize("filters", [None, {}])
def test_no_filter_matches_everything(docs, filters):
    assert titles(filters) == ALL


# --- eq / ne -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("author", "Ada", {"str-a"}),
        ("author", "1", {"str-1"}),  # string "1" is not number 1
        ("author", 1, {"num-1"}),
        ("author", 1.0, {"num-1"}),  # numbers compare numerically
        ("year", 1843, {"str-a"}),  # not the list [1843]
        ("year", 1950.5, {"str-b"}),
        ("year", "1950", {"str-1"}),
        ("draft", True, {"str-b"}),  # true is not 1 nor "true"
        ("draft", False, {"str-a"}),
        ("draft", 1, {"str-1"}),
        ("draft", "true", {"num-1"}),
        ("missing", "Ada", set()),
    ],
)
def test_eq_is_exact_and_type_aware(docs, key, value, expected):
    assert titles(cmp("eq", key, value)) == expected


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("author", "Ada", ALL - {"str-a"}),
        ("author", 1, ALL - {"num-1"}),
        ("draft", True, ALL - {"str-b"}),
        ("year", 1843, ALL - {"str-a"}),
        # Missing key matches ne: every document lacks it.
        ("missing", "x", ALL),
    ],
)
def test_ne_is_the_negation_of_eq_and_matches_missing_keys(docs, key, value, expected):
    assert titles(cmp("ne", key, value)) == expected


def test_ne_matches_json_null(docs):
    # "obj" has year: null, which is not equal to 1843; "empty" lacks year.
    assert {"obj", "empty"} <= titles(cmp("ne", "year", 1843))


# --- gt / gte / lt / lte -----------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gt", 1843, {"str-b", "num-1"}),
        ("gte", 1843, {"str-a", "str-b", "num-1"}),
        ("lt", 1950.5, {"str-a"}),
        ("lte", 1950.5, {"str-a", "str-b"}),
        ("gt", 1e9, set()),
        ("gte", -5, {"str-a", "str-b", "num-1"}),
        ("lt", 10_000_000_000_000_000_000, {"str-a", "str-b", "num-1"}),
    ],
)
def test_range_on_numbers_only_matches_json_numbers(docs, op, value, expected):
    # "str-1" has year "1950" (a string), "list" [1843], "obj" null: never match.
    assert titles(cmp(op, "year", value)) == expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gt", "Ada", {"str-b"}),  # "1" < "Ada"
        ("gte", "Ada", {"str-a", "str-b"}),
        ("lt", "B", {"str-a", "str-1"}),
        ("lte", "Bob", {"str-a", "str-b", "str-1"}),
        ("gt", "", {"str-a", "str-b", "str-1"}),
    ],
)
def test_range_on_strings_is_lexicographic_and_only_matches_strings(
    docs, op, value, expected
):
    # "num-1" has author 1 (number), "list"/"obj" are not strings: never match.
    assert titles(cmp(op, "author", value)) == expected


def test_string_range_uses_code_point_order(make_doc):
    # Under the C collation uppercase sorts before lowercase; locale collations
    # would interleave them.
    make_doc("upper", {"name": "Zed"})
    make_doc("lower", {"name": "abe"})
    make_doc("accent", {"name": "émile"})
    assert titles(cmp("lt", "name", "a")) == {"upper"}
    assert titles(cmp("gt", "name", "z")) == {"accent"}


def test_string_that_looks_numeric_never_casts(docs):
    # A numeric comparison over a key holding strings must not raise a cast error.
    assert titles(cmp("gt", "author", 0)) == {"num-1"}


# --- in / nin ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["Ada", "Bob"], {"str-a", "str-b"}),
        (["1"], {"str-1"}),
        ([1], {"num-1"}),
        ([1.0, "Ada"], {"num-1", "str-a"}),
        (["Ada", "Bob", "nobody"], {"str-a", "str-b"}),  # not the list attribute
        ([], set()),
    ],
)
def test_in_is_type_aware_membership(docs, value, expected):
    assert titles(cmp("in", "author", value)) == expected


def test_in_does_not_match_booleans_with_numbers(docs):
    # draft: true/false/1/"true": only the number 1 is in [1].
    assert titles(cmp("in", "draft", [1])) == {"str-1"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["Ada", "Bob"], ALL - {"str-a", "str-b"}),
        ([1], ALL - {"num-1"}),
        ([], ALL),
    ],
)
def test_nin_is_the_negation_of_in_and_matches_missing_keys(docs, value, expected):
    assert titles(cmp("nin", "author", value)) == expected
    assert "empty" in titles(cmp("nin", "author", value))


def test_in_on_missing_key_matches_nothing(docs):
    assert titles(cmp("in", "missing", ["Ada", 1])) == set()


# --- and / or ------------------------------------------------------------------


def test_and_or_nested(docs):
    filters = {
        "type": "or",
        "filters": [
            {
                "type": "and",
                "filters": [cmp("eq", "author", "Ada"), cmp("lt", "year", 1900)],
            },
            {
                "type": "and",
                "filters": [
                    cmp("eq", "draft", True),
                    {
                        "type": "or",
                        "filters": [
                            cmp("gte", "year", 1950),
                            cmp("eq", "author", "nobody"),
                        ],
                    },
                ],
            },
        ],
    }
    assert titles(filters) == {"str-a", "str-b"}


def test_and_requires_all_and_or_any(docs):
    both = [cmp("eq", "author", "Ada"), cmp("eq", "draft", True)]
    assert titles({"type": "and", "filters": both}) == set()
    assert titles({"type": "or", "filters": both}) == {"str-a", "str-b"}


def test_single_child_compound(docs):
    assert titles({"type": "and", "filters": [cmp("eq", "author", "Bob")]}) == {"str-b"}


def test_ne_inside_or_still_matches_missing_keys(docs):
    filters = {
        "type": "and",
        "filters": [
            {"type": "or", "filters": [cmp("ne", "author", "Ada")]},
            cmp("nin", "year", [1843, 2001]),
        ],
    }
    assert titles(filters) == {"str-b", "str-1", "list", "obj", "empty"}


def test_maximum_depth_is_allowed(docs):
    node: dict = cmp("eq", "author", "Ada")
    for _ in range(MAX_DEPTH):
        node = {"type": "and", "filters": [node]}
    assert titles(node) == {"str-a"}


def test_maximum_comparisons_are_allowed(docs):
    filters = {
        "type": "or",
        "filters": [cmp("eq", "year", n) for n in range(MAX_COMPARISONS - 1)]
        + [cmp("eq", "author", "Ada")],
    }
    assert titles(filters) == {"str-a"}


# --- prefix: the same filter on Chunk via the relation ---------------------------


def test_prefix_filters_chunks_through_document(docs):
    for document in Document.objects.all():
        for ordinal in range(2):
            ChunkFactory(
                document=document, ordinal=ordinal, text=f"{document.title} {ordinal}"
            )
    filters = {
        "type": "or",
        "filters": [cmp("eq", "author", "Ada"), cmp("ne", "draft", False)],
    }
    chunks = Chunk.objects.filter(document_filter_q(filters, prefix="document__"))
    expected = titles(filters)
    assert expected == ALL  # everything but str-a has draft != false; str-a is Ada
    assert chunks.count() == 2 * len(expected)

    narrow = cmp("gt", "year", 1900)
    chunk_titles = set(
        Chunk.objects.filter(
            document_filter_q(narrow, prefix="document__")
        ).values_list("document__title", flat=True)
    )
    assert chunk_titles == {"str-b", "num-1"}


def test_prefix_with_missing_key_semantics(docs):
    document = Document.objects.get(title="empty")
    ChunkFactory(document=document, ordinal=0)
    q = document_filter_q(cmp("nin", "author", ["Ada"]), prefix="document__")
    assert list(Chunk.objects.filter(q).values_list("document__title", flat=True)) == [
        "empty"
    ]


# --- hostile keys are literal JSON keys --------------------------------------------


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_are_literal(make_doc, key):
    make_doc("hit", {key: "v", "n": 1, "x": 5})
    make_doc("num", {key: 5})
    # Decoys for path-like readings of the key: nested "a" -> "b", array index 1.
    make_doc("decoy", {"a": {"b": "v"}, "x": ["v", "v"], "dot": {"ted": "v"}})
    assert titles(cmp("eq", key, "v")) == {"hit"}
    assert titles(cmp("in", key, ["v"])) == {"hit"}
    assert titles(cmp("gte", key, "v")) == {"hit"}
    assert titles(cmp("gt", key, 4)) == {"num"}
    assert titles(cmp("ne", key, "v")) == {"num", "decoy"}
    assert titles(cmp("nin", key, ["v"])) == {"num", "decoy"}
    assert Document.objects.count() == 3  # and nothing was dropped


def test_hostile_values_are_bound(make_doc):
    value = "x'); drop table documents_document; --"
    make_doc("hit", {"k": value})
    assert titles(cmp("eq", "k", value)) == {"hit"}
    assert titles(cmp("in", "k", [value, "%s"])) == {"hit"}
    assert titles(cmp("lte", "k", value)) == {"hit"}


# --- FilterError -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "match"),
    [
        ("eq", r"^filters: must be an object$"),
        ([cmp("eq", "a", 1)], r"^filters: must be an object$"),
        ({"key": "a", "value": 1}, r"^filters\.type: required$"),
        ({"type": 1, "key": "a", "value": 1}, r"^filters\.type: must be a string$"),
        (cmp("like", "a", "x"), r"^filters\.type: unknown operator 'like'$"),
        (
            {"type": "and", "filters": [cmp("eq", "a", 1), cmp("like", "a", 1)]},
            r"^filters\.filters\[1\]\.type: unknown operator 'like'$",
        ),
        ({"type": "eq", "key": "a"}, r"^filters\.value: required$"),
        ({"type": "eq", "value": 1}, r"^filters\.key: required$"),
        (
            {"type": "eq", "key": "a", "value": 1, "extra": 1},
            r"^filters: unknown field 'extra'$",
        ),
        ({"type": "and"}, r"^filters\.filters: required$"),
        (
            {"type": "or", "filters": [], "key": "a"},
            r"^filters: unknown field 'key'$",
        ),
        ({"type": "and", "filters": {}}, r"^filters\.filters: must be a list$"),
        (
            {"type": "or", "filters": []},
            r"^filters\.filters: must contain at least one filter$",
        ),
        (
            {"type": "and", "filters": ["eq"]},
            r"^filters\.filters\[0\]: must be an object$",
        ),
        (cmp("eq", "", 1), r"^filters\.key: must be a non-empty string$"),
        (cmp("eq", 5, 1), r"^filters\.key: must be a non-empty string$"),
        (cmp("eq", None, 1), r"^filters\.key: must be a non-empty string$"),
        (cmp("eq", "k" * 257, 1), r"^filters\.key: longer than 256 characters$"),
        (
            cmp("eq", "a", None),
            r"^filters\.value: must be a string, a number or a boolean, not NoneType$",
        ),
        (cmp("eq", "a", {"x": 1}), r"^filters\.value: must be .*not dict$"),
        (cmp("eq", "a", float("nan")), r"^filters\.value: numbers must be finite$"),
        (cmp("gt", "a", float("inf")), r"^filters\.value: numbers must be finite$"),
        (cmp("eq", "a", ["x"]), r"^filters\.value: only 'in' and 'nin' take a list$"),
        (cmp("gt", "a", True), r"^filters\.value: 'gt' takes a number or a string$"),
        (cmp("in", "a", "x"), r"^filters\.value: 'in' takes a list$"),
        (cmp("nin", "a", 1), r"^filters\.value: 'nin' takes a list$"),
        (
            cmp("in", "a", ["x", True]),
            r"^filters\.value\[1\]: must be a string or a number, not a boolean$",
        ),
        (
            cmp("in", "a", [["x"]]),
            r"^filters\.value\[0\]: must be a string or a number, not list$",
        ),
        (cmp("in", "a", [None]), r"^filters\.value\[0\]: .*not NoneType$"),
        (
            cmp("in", "a", list(range(101))),
            r"^filters\.value: at most 100 items in a list$",
        ),
        (
            cmp("eq", "a", "x" * 4097),
            r"^filters\.value: string longer than 4096 characters$",
        ),
    ],
)
def test_filter_errors(filters, match):
    with pytest.raises(FilterError, match=match):
        document_filter_q(filters)


def test_filter_error_is_a_value_error():
    assert issubclass(FilterError, ValueError)


def test_error_messages_are_bounded():
    with pytest.raises(FilterError) as info:
        document_filter_q(cmp("x" * 10_000, "a", 1))
    assert len(str(info.value)) < 100


def test_depth_cap():
    node: dict = cmp("eq", "a", 1)
    for _ in range(MAX_DEPTH + 1):
        node = {"type": "and", "filters": [node]}
    path = r"filters" + r"\.filters\[0\]" * MAX_DEPTH
    with pytest.raises(FilterError, match=rf"^{path}: nested too deeply \(at most 8"):
        document_filter_q(node)


def test_depth_cap_names_the_too_deep_node():
    node: dict = cmp("eq", "a", 1)
    for _ in range(MAX_DEPTH + 1):
        node = {"type": "or", "filters": [cmp("eq", "b", 2), node]}
    path = r"filters" + r"\.filters\[1\]" * MAX_DEPTH
    with pytest.raises(FilterError, match=rf"^{path}: nested too deeply"):
        document_filter_q(node)


def test_comparison_cap_across_levels():
    filters = {
        "type": "and",
        "filters": [
            {"type": "or", "filters": [cmp("eq", "a", n) for n in range(40)]},
            {"type": "or", "filters": [cmp("eq", "b", n) for n in range(40)]},
        ],
    }
    with pytest.raises(
        FilterError,
        match=r"^filters\.filters\[1\]\.filters\[24\]: too many comparisons \(at most 64\)$",
    ):
        document_filter_q(filters)


def test_comparison_cap_stops_before_reading_everything():
    # A huge flat list fails on comparison 65, before building the rest.
    filters = {"type": "or", "filters": [cmp("eq", "a", 1)] * 10**5}
    with pytest.raises(FilterError, match=r"filters\.filters\[64\]: too many"):
        document_filter_q(filters)
