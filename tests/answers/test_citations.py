"""Citation markers survive streaming splits and never point at nothing."""

import pytest

from ragapp.answers.citations import CitationFilter, strip_markers


def run(pieces: list[str], valid: set[int]) -> tuple[str, list[int]]:
    citations = CitationFilter(valid)
    out, cited = "", []
    for piece in pieces:
        text, new = citations.feed(piece)
        out += text
        cited += new
    text, new = citations.finish()
    return out + text, cited + new


def test_valid_markers_kept_in_order_of_first_use():
    assert run(["Cats sleep [2]. Dogs bark [1][2]."], {1, 2}) == (
        "Cats sleep [2]. Dogs bark [1][2].",
        [2, 1],
    )


def test_invented_marker_dropped_never_invented():
    text, cited = run(["A claim [7]. Another [1, 9]."], {1, 2})
    assert text == "A claim . Another [1]."
    assert cited == [1]


@pytest.mark.parametrize("cut", range(1, 14))
def test_marker_split_across_pieces(cut):
    answer = "Fact one [12]. Fact two [3]."
    text, cited = run([answer[:cut], answer[cut:]], {3, 12})
    assert text == answer
    assert cited == [12, 3]


def test_character_by_character_stream():
    answer = "See [1, 2] and [4] but not [x] or [sic] or [5"
    text, cited = run(list(answer), {1, 2, 4})
    assert text == "See [1][2] and [4] but not [x] or [sic] or [5"
    assert cited == [1, 2, 4]


def test_brackets_that_are_not_markers_pass_through():
    text, cited = run(["a[0] list [a, b] and [", "]"], {1})
    assert text == "a list [a, b] and []"
    assert cited == []


def test_strip_markers():
    assert (
        strip_markers("Cats sleep [2]. Dogs [1][3] bark.") == "Cats sleep. Dogs bark."
    )
