"""The chunker: structure first, then sentences, then tokens, with exact counts."""

import re
from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragapp.documents.chunking import (
    ChunkDraft,
    ChunkingConfig,
    chunk_blocks,
    split_sentences,
)
from ragapp.documents.tokens import count_tokens


@dataclass(frozen=True)
class Block:
    """The parser's block shape; the chunker only reads these four fields."""

    text: str
    page: int | None = 1
    heading: str = ""
    kind: str = "paragraph"


WORDS = [
    *("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa"),
    *("lambda", "sigma", "omega", "river", "mountain", "forest", "signal"),
    *("vector", "matrix", "kernel", "sample", "measure"),
]


def sentence(i: int, n_words: int = 10) -> str:
    """Return a distinct, capitalised sentence of `n_words` words."""
    words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(n_words)]
    return f"Item{i} " + " ".join(words) + "."


def paragraph(start: int, n_sentences: int, n_words: int = 10) -> str:
    return " ".join(sentence(start + k, n_words) for k in range(n_sentences))


def no_whitespace(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace())


def check_invariants(chunks: list[ChunkDraft], config: ChunkingConfig) -> None:
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text.strip(), "empty chunk"
        assert chunk.token_count == count_tokens(chunk.text)
        assert chunk.token_count <= config.max_tokens + config.min_tokens
        assert (chunk.page_start is None) == (chunk.page_end is None)
        if chunk.page_start is not None:
            assert chunk.page_start <= chunk.page_end


# --- Structure --------------------------------------------------------------------


def test_heading_block_starts_a_new_chunk_and_is_not_emitted_as_text():
    blocks = [
        Block("1 Intro", heading="1 Intro", kind="heading"),
        Block("Short intro text.", heading="1 Intro"),
        Block("2 Scope", heading="2 Scope", kind="heading"),
        Block("Short scope text.", heading="2 Scope"),
    ]

    chunks = chunk_blocks(blocks)

    assert [(c.heading, c.text) for c in chunks] == [
        ("1 Intro", "Short intro text."),
        ("2 Scope", "Short scope text."),
    ]


def test_heading_path_change_starts_a_new_chunk_without_a_heading_block():
    blocks = [
        Block("Terms are defined here.", heading="2 Scope > 2.1 Terms"),
        Block("Limits are listed here.", heading="2 Scope > 2.2 Limits"),
    ]

    chunks = chunk_blocks(blocks)

    assert [(c.heading, c.text) for c in chunks] == [
        ("2 Scope > 2.1 Terms", "Terms are defined here."),
        ("2 Scope > 2.2 Limits", "Limits are listed here."),
    ]


def test_repeated_heading_block_with_same_path_still_starts_a_new_chunk():
    blocks = [
        Block("Notes", heading="Notes", kind="heading"),
        Block("First notes.", heading="Notes"),
        Block("Notes", heading="Notes", kind="heading"),
        Block("Second notes.", heading="Notes"),
    ]

    assert [c.text for c in chunk_blocks(blocks)] == ["First notes.", "Second notes."]


def test_heading_with_no_body_produces_no_chunk():
    blocks = [
        Block("2 Scope", heading="2 Scope", kind="heading"),
        Block("2.1 Terms", heading="2 Scope > 2.1 Terms", kind="heading"),
        Block("A term.", heading="2 Scope > 2.1 Terms"),
    ]

    chunks = chunk_blocks(blocks)

    assert [(c.heading, c.text) for c in chunks] == [("2 Scope > 2.1 Terms", "A term.")]


def test_short_paragraphs_are_packed_together_up_to_max_tokens():
    config = ChunkingConfig(max_tokens=100, overlap_tokens=0, min_tokens=0)
    paragraphs = [paragraph(i * 2, 2) for i in range(8)]  # ~27 tokens each

    chunks = chunk_blocks([Block(p) for p in paragraphs], config)

    assert 1 < len(chunks) < len(paragraphs)
    assert [p for c in chunks for p in c.text.split("\n\n")] == paragraphs
    for chunk, nxt in pairwise(chunks):
        first_of_next = nxt.text.split("\n\n")[0]
        assert chunk.token_count <= 100
        assert count_tokens(chunk.text + "\n\n" + first_of_next) > 100


def test_paragraph_that_does_not_fit_starts_the_next_chunk_whole():
    config = ChunkingConfig(max_tokens=100, overlap_tokens=0, min_tokens=0)
    first, second = paragraph(0, 5), paragraph(10, 4)
    assert count_tokens(first) < 100 < count_tokens(first + "\n\n" + second)

    chunks = chunk_blocks([Block(first), Block(second)], config)

    assert [c.text for c in chunks] == [first, second]


def test_paragraph_longer_than_max_tokens_is_split_between_sentences():
    config = ChunkingConfig(max_tokens=60, overlap_tokens=0, min_tokens=0)
    sentences = [sentence(i) for i in range(30)]

    chunks = chunk_blocks([Block(" ".join(sentences))], config)

    assert len(chunks) > 1
    assert [s for c in chunks for s in split_sentences(c.text)] == sentences
    assert all(c.token_count <= 60 for c in chunks)


def test_5000_token_paragraph_is_cut_into_chunks_within_budget():
    text = paragraph(0, 400)
    assert count_tokens(text) >= 5000
    config = ChunkingConfig()

    chunks = chunk_blocks([Block(text)], config)

    check_invariants(chunks, config)
    assert len(chunks) >= 5000 // config.max_tokens
    assert all(c.token_count <= config.max_tokens for c in chunks[:-1])
    assert all(c.text.endswith(".") for c in chunks)


def test_1000_token_sentence_without_punctuation_is_cut_between_words():
    words = [f"{WORDS[i % len(WORDS)]}{i}" for i in range(500)]
    text = " ".join(words)
    assert count_tokens(text) >= 1000
    config = ChunkingConfig(max_tokens=200, overlap_tokens=30, min_tokens=40)

    chunks = chunk_blocks([Block(text)], config)

    check_invariants(chunks, config)
    assert len(chunks) >= 5
    # Token cuts are not whole sentences, so nothing is repeated as overlap.
    assert " ".join(c.text for c in chunks) == text
    for chunk in chunks:
        assert set(chunk.text.split()) <= set(words)


def test_cjk_text_without_spaces_falls_back_to_token_cuts_on_characters():
    text = "深度学习模型在自然语言处理中的应用越来越广泛" * 40
    config = ChunkingConfig(max_tokens=50, overlap_tokens=10, min_tokens=10)

    chunks = chunk_blocks([Block(text)], config)

    check_invariants(chunks, config)
    assert len(chunks) > 1
    assert "".join(c.text for c in chunks) == text
    assert all("\ufffd" not in c.text for c in chunks)


def test_cjk_sentences_are_split_at_ideographic_full_stops():
    sentences = ["深度学习模型在自然语言处理中的应用越来越广泛。"] * 20
    config = ChunkingConfig(max_tokens=60, overlap_tokens=0, min_tokens=0)

    chunks = chunk_blocks([Block("".join(sentences))], config)

    assert len(chunks) > 1
    assert all(c.text.endswith("。") for c in chunks)


# --- Sentences --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Results are shown in Fig. 3 and Table 2.",
        "Use a solvent, e.g. ethanol, for cleaning.",
        "Use a solvent, i.e. Ethanol, for cleaning.",
        "The mean was 3.5 mm with 0.2 mm spread.",
        "As shown by Smith et al. (2019) the effect holds.",
        "Dr. Smith met Prof. Jones in St. Louis.",
        "J. R. R. Tolkien wrote it.",
        "It costs approx. 20 euros vs. 30 last year.",
        "See the U.S. rules and cf. Sec. 4 below.",
        "Pay No. 5 by Jan. 31 as in Eq. (2) on p. 7.",
        "Wait... it worked.",
    ],
)
def test_sentence_splitter_keeps_abbreviations_initials_and_decimals(text):
    assert split_sentences(text) == [text]


def test_sentence_splitter_splits_at_terminators_before_capitals_and_digits():
    text = 'It failed. Why? "It was late!" he said. 2024 was worse. (See below.) Done'

    assert split_sentences(text) == [
        "It failed.",
        "Why?",
        '"It was late!" he said.',
        "2024 was worse.",
        "(See below.)",
        "Done",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Bring pens, paper, etc. Then sit.",
        "The answer was no. Then we left.",
        "Read the first figure in Fig. Then the next.",
        "It was made by Acme Inc. The firm grew.",
    ],
)
def test_sentence_splitter_splits_after_ambiguous_abbreviations_before_a_word(text):
    assert len(split_sentences(text)) == 2


# --- Overlap ----------------------------------------------------------------------


def test_overlap_repeats_trailing_whole_sentences_of_the_previous_chunk():
    config = ChunkingConfig(max_tokens=80, overlap_tokens=30, min_tokens=0)
    sentences = [sentence(i, 8) for i in range(20)]

    chunks = chunk_blocks([Block(" ".join(sentences))], config)

    assert len(chunks) > 2
    for previous, chunk in pairwise(chunks):
        previous_sentences = split_sentences(previous.text)
        repeated = [s for s in split_sentences(chunk.text) if s in previous_sentences]
        assert repeated, "no overlap"
        assert repeated == previous_sentences[-len(repeated) :]
        assert count_tokens(" ".join(repeated)) <= 30
        assert chunk.text.startswith(" ".join(repeated))


def test_overlap_does_not_cross_a_heading():
    config = ChunkingConfig(max_tokens=80, overlap_tokens=30, min_tokens=0)
    blocks = [
        Block(paragraph(0, 5, 8), heading="1 Intro"),
        Block(paragraph(50, 5, 8), heading="2 Scope"),
    ]

    chunks = chunk_blocks(blocks, config)

    first_of_scope = next(c for c in chunks if c.heading == "2 Scope")
    assert first_of_scope.text.startswith(sentence(50, 8))


def test_zero_overlap_repeats_nothing():
    config = ChunkingConfig(max_tokens=80, overlap_tokens=0, min_tokens=0)
    sentences = [sentence(i, 8) for i in range(20)]

    chunks = chunk_blocks([Block(" ".join(sentences))], config)

    assert " ".join(c.text for c in chunks) == " ".join(sentences)


def test_overlap_yields_to_a_paragraph_that_would_otherwise_be_split():
    config = ChunkingConfig(max_tokens=100, overlap_tokens=30, min_tokens=0)
    first, second = paragraph(0, 5), paragraph(10, 7)
    last_sentence = split_sentences(first)[-1]
    assert count_tokens(last_sentence) <= 30
    assert count_tokens(last_sentence + "\n\n" + second) > 100 >= count_tokens(second)

    chunks = chunk_blocks([Block(first), Block(second)], config)

    assert [c.text for c in chunks] == [first, second]


# --- Tiny tails -------------------------------------------------------------------


def test_tiny_trailing_piece_merges_into_the_previous_chunk_of_its_section():
    big, tiny = paragraph(0, 6), "A short closing remark."
    config = ChunkingConfig(
        max_tokens=count_tokens(big), overlap_tokens=0, min_tokens=40
    )

    chunks = chunk_blocks([Block(big), Block(tiny)], config)

    assert [c.text for c in chunks] == [big + "\n\n" + tiny]
    assert chunks[0].token_count <= config.max_tokens + 40


def test_trailing_piece_of_min_tokens_or_more_stays_separate():
    config = ChunkingConfig(max_tokens=100, overlap_tokens=0, min_tokens=10)
    big, tail = paragraph(0, 7), paragraph(20, 1)
    assert count_tokens(tail) >= 10
    assert count_tokens(big + "\n\n" + tail) > 100

    chunks = chunk_blocks([Block(big), Block(tail)], config)

    assert [c.text for c in chunks] == [big, tail]


def test_tiny_section_is_not_merged_across_a_heading():
    config = ChunkingConfig(max_tokens=100, overlap_tokens=0, min_tokens=40)
    blocks = [
        Block(paragraph(0, 6), heading="1 Intro"),
        Block("Tiny.", heading="2 Scope"),
    ]

    chunks = chunk_blocks(blocks, config)

    assert [(c.heading, c.text) for c in chunks][-1] == ("2 Scope", "Tiny.")


# --- Pages ------------------------------------------------------------------------


def test_paragraph_continuing_across_a_page_break_spans_both_pages():
    blocks = [
        Block("The pump must be inspected every", page=7, heading="4 Maintenance"),
        Block("six months by a qualified person.", page=8, heading="4 Maintenance"),
    ]

    chunks = chunk_blocks(blocks)

    assert len(chunks) == 1
    assert (chunks[0].page_start, chunks[0].page_end) == (7, 8)


def test_chunk_page_range_covers_exactly_the_pages_of_its_text():
    config = ChunkingConfig(max_tokens=100, overlap_tokens=0, min_tokens=0)
    blocks = [Block(paragraph(i * 10, 5), page=i + 1) for i in range(4)]

    chunks = chunk_blocks(blocks, config)

    assert [(c.page_start, c.page_end) for c in chunks] == [(n, n) for n in range(1, 5)]


def test_overlap_from_the_previous_page_widens_the_page_range():
    config = ChunkingConfig(max_tokens=100, overlap_tokens=30, min_tokens=0)
    blocks = [Block(paragraph(0, 5, 8), page=3), Block(paragraph(20, 5, 8), page=4)]

    chunks = chunk_blocks(blocks, config)

    assert len(chunks) == 2
    assert (chunks[1].page_start, chunks[1].page_end) == (3, 4)
    assert split_sentences(chunks[1].text)[0] in split_sentences(chunks[0].text)


def test_unpaged_blocks_give_no_page_range():
    chunks = chunk_blocks([Block("Plain text file content.", page=None)])

    assert (chunks[0].page_start, chunks[0].page_end) == (None, None)


# --- Whitespace and block kinds ---------------------------------------------------


def test_whitespace_is_normalised_and_paragraph_breaks_are_kept():
    blocks = [
        Block("  First   line\nwrapped\there.  \n\n  Second\u00a0paragraph.  "),
        Block("Third\r\nblock."),
    ]

    chunks = chunk_blocks(blocks)

    assert [c.text for c in chunks] == [
        "First line wrapped here.\n\nSecond paragraph.\n\nThird block."
    ]


def test_empty_and_whitespace_only_blocks_are_dropped():
    blocks = [Block(""), Block("   \n\n\t "), Block("Body.", page=2), Block("\n")]

    chunks = chunk_blocks(blocks)

    assert [(c.text, c.page_start, c.page_end) for c in chunks] == [("Body.", 2, 2)]


def test_no_body_text_gives_no_chunks():
    assert chunk_blocks([]) == []
    assert chunk_blocks([Block("  "), Block("Title", kind="heading")]) == []


def test_table_rows_keep_their_line_breaks():
    table = "Name  | Value\n\nalpha |  1\nbeta  | 2"

    chunks = chunk_blocks([Block(table, kind="table")])

    assert chunks[0].text == "Name | Value\n\nalpha | 1\nbeta | 2"


def test_consecutive_list_items_are_joined_by_single_line_breaks():
    blocks = [
        Block("Steps:"),
        Block("- open the valve", kind="list_item"),
        Block("- start the pump", kind="list_item"),
    ]

    chunks = chunk_blocks(blocks)

    assert chunks[0].text == "Steps:\n\n- open the valve\n- start the pump"


def test_special_token_text_is_chunked_as_plain_text():
    chunks = chunk_blocks([Block("The marker <|endoftext|> appears in logs.")])

    assert chunks[0].text == "The marker <|endoftext|> appears in logs."
    assert chunks[0].token_count == count_tokens(chunks[0].text)


def test_blocks_may_come_from_a_generator():
    chunks = chunk_blocks(Block(sentence(i)) for i in range(3))

    assert len(chunks) == 1


# --- Config -----------------------------------------------------------------------


def test_default_config_fits_minilm_window_with_slack():
    config = ChunkingConfig()

    assert (config.max_tokens, config.overlap_tokens, config.min_tokens) == (
        200,
        30,
        40,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 8}, "max_tokens must be at least 16"),
        ({"max_tokens": 50, "overlap_tokens": 50}, "overlap_tokens must be in"),
        ({"overlap_tokens": -1}, "overlap_tokens must be in"),
        ({"min_tokens": -1}, "min_tokens must not be negative"),
    ],
)
def test_config_rejects_budgets_that_cannot_work(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ChunkingConfig(**kwargs)


# --- Properties -------------------------------------------------------------------

FRAGMENTS = [
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "\u00a0",
    "Fig. 3",
    "e.g. ",
    "3.5",
    "Dr. ",
    "The end. ",
    "Why? ",
    "Yes! ",
    "他来了。",
    "深度学习",
    "🙂",
    "<|endoftext|>",
    "supercalifragilisticexpialidocious",
]

texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=30)), max_size=40
).map("".join)

blocks_strategy = st.lists(
    st.builds(
        Block,
        text=texts,
        page=st.one_of(st.none(), st.integers(1, 5)),
        heading=st.sampled_from(["", "1 Intro", "1 Intro > 1.1 Terms"]),
        kind=st.sampled_from(["heading", "paragraph", "list_item", "table", "other"]),
    ),
    max_size=12,
)


@st.composite
def configs(draw, overlap: bool = True) -> ChunkingConfig:
    max_tokens = draw(st.integers(16, 80))
    return ChunkingConfig(
        max_tokens=max_tokens,
        overlap_tokens=draw(st.integers(0, max_tokens - 1)) if overlap else 0,
        min_tokens=draw(st.integers(0, 20)),
    )


def body_text(blocks: list[Block]) -> str:
    return "".join(no_whitespace(b.text) for b in blocks if b.kind != "heading")


def is_subsequence(needle: str, haystack: str) -> bool:
    it = iter(haystack)
    return all(ch in it for ch in needle)


PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(blocks=blocks_strategy, config=configs(overlap=False))
def test_without_overlap_chunks_are_exactly_the_body_text_in_order(blocks, config):
    chunks = chunk_blocks(blocks, config)

    check_invariants(chunks, config)
    assert "".join(no_whitespace(c.text) for c in chunks) == body_text(blocks)


@PROPERTY_SETTINGS
@given(blocks=blocks_strategy, config=configs())
def test_every_non_whitespace_character_lands_in_a_chunk(blocks, config):
    chunks = chunk_blocks(blocks, config)

    check_invariants(chunks, config)
    body = body_text(blocks)
    joined = "".join(no_whitespace(c.text) for c in chunks)
    assert is_subsequence(body, joined)
    pages = {b.page for b in blocks}
    headings = {b.heading for b in blocks}
    for chunk in chunks:
        assert no_whitespace(chunk.text) in body
        assert not re.search(r"[^\S \n]|  | \n|\n |\n\n\n", chunk.text)
        assert chunk.heading in headings
        assert chunk.page_start in pages
        assert chunk.page_end in pages
