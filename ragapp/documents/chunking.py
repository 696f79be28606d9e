"""Cut parsed document blocks into retrieval-sized chunks.

Structure comes before token counts: a heading starts a new chunk, paragraphs
are packed whole, a paragraph that cannot fit is split between sentences, and
only a sentence that alone exceeds the budget is cut between tokens. Every
non-whitespace character of the body blocks lands in some chunk; heading text
travels in `ChunkDraft.heading` instead of the chunk text, so a heading with no
body under it produces nothing.

Each sentence is encoded once and each finished chunk once more to record its
exact count, so the work is linear in the input: nothing re-encodes a growing
string while packing.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

from ragapp.documents.tokens import count_tokens, encoding


class BlockLike(Protocol):
    """What the chunker reads from a parsed block (the parser's `Block`)."""

    @property
    def text(self) -> str: ...

    @property
    def page(self) -> int | None: ...

    @property
    def heading(self) -> str: ...

    @property
    def kind(self) -> str: ...


@dataclass(frozen=True)
class ChunkingConfig:
    """Chunk budgets, in cl100k tokens.

    The defaults suit the default embedder, all-MiniLM-L6-v2, which reads only
    its first 256 word-pieces and silently ignores the rest. Its WordPiece
    vocabulary yields about 10-20 % more pieces than cl100k tokens on English,
    so 200 cl100k tokens (at most 240 with the tail slack) stay inside the
    window. The reference SciFact run found embedding pieces of at most ~256
    word-pieces beats embedding whole documents by about 4 nDCG points; the
    app's retrieval benchmark decides the final values.

    - `max_tokens`: packing target; no chunk exceeds it except a merged tail.
    - `overlap_tokens`: whole sentences of up to this many tokens repeated from
      the previous chunk of the same section, so a fact split across the cut
      is still retrievable from one chunk.
    - `min_tokens`: a section's last piece with less new text than this joins
      the chunk before it when the result stays within
      `max_tokens + min_tokens`.
    """

    max_tokens: int = 200
    overlap_tokens: int = 30
    min_tokens: int = 40

    def __post_init__(self) -> None:
        # Any character encodes to at most 4 tokens (one per UTF-8 byte), so a
        # budget of 16 always lets the token fallback make progress.
        if self.max_tokens < 16:
            raise ValueError("max_tokens must be at least 16")
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ValueError("overlap_tokens must be in [0, max_tokens)")
        if self.min_tokens < 0:
            raise ValueError("min_tokens must not be negative")


DEFAULT_CONFIG = ChunkingConfig()


def embedding_text(heading: str, text: str) -> str:
    """Return what the embedder sees of a chunk: its heading, then its text.

    A passage deep in a section rarely names its subject; the heading (for
    an abstract, its title) does. The chunker keeps chunks within the
    embedders' window with room for a heading line.
    """
    return f"{heading}\n{text}" if heading else text


def _passage_parts(text: str) -> list[str]:
    """Sentences of the prose between table rows, and the rows themselves."""
    parts: list[str] = []
    prose: list[str] = []
    for line in text.splitlines():
        row = " ".join(line.split())
        # Prose may hold " | " too; a row is one line that is one sentence.
        if TABLE_CELL_SEPARATOR in row and len(split_sentences(row)) == 1:
            parts.extend(split_sentences(" ".join(" ".join(prose).split())))
            prose = []
            parts.append(row)
        else:
            prose.append(line)
    parts.extend(split_sentences(" ".join(" ".join(prose).split())))
    return [part for part in parts if part]


# A long passage is cut to this many sentences where each is embedded alone
# (kept sentence vectors, the query-time re-score): bounds the cost.
MAX_SENTENCES_PER_PASSAGE = 24


@dataclass(frozen=True)
class SentenceSpan:
    """A sentence of a passage: where it lies in the passage's normalised text."""

    ordinal: int
    start: int
    end: int
    text: str


# A table row as the parsers write it: cells joined by " | ", one row a line.
TABLE_CELL_SEPARATOR = " | "


def passage_sentences(text: str) -> list[SentenceSpan]:
    """Return the sentences of a passage (whitespace-normalised), the first 24 at most.

    A passage with no sentence boundary is one sentence; a table row (a line
    holding " | " and no sentence boundary) is a sentence of its own, so a
    quote of it is that row.
    Offsets index `" ".join(text.split())`, the form every sentence-level
    scorer reads.
    """
    normalised = " ".join(text.split())
    spans: list[SentenceSpan] = []
    position = 0
    for sentence in _passage_parts(text) or [normalised]:
        if len(spans) == MAX_SENTENCES_PER_PASSAGE:
            break
        if not sentence:
            continue
        start = normalised.find(sentence, position)
        if start < 0:  # split_sentences only strips; never expected
            start = position
        position = start + len(sentence)
        spans.append(SentenceSpan(len(spans), start, position, sentence))
    return spans


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk ready to be embedded and stored."""

    ordinal: int
    text: str
    heading: str
    token_count: int
    page_start: int | None
    page_end: int | None


def chunk_blocks(
    blocks: Iterable[BlockLike], config: ChunkingConfig = DEFAULT_CONFIG
) -> list[ChunkDraft]:
    """Split `blocks` into chunks, numbered in reading order from 0."""
    drafts: list[ChunkDraft] = []
    for heading, units in _sections(blocks, config):
        for packed in _pack_section(units, config):
            pages = [unit.page for unit in packed.units if unit.page is not None]
            drafts.append(
                ChunkDraft(
                    ordinal=len(drafts),
                    text=packed.text,
                    heading=heading,
                    token_count=packed.tokens,
                    page_start=min(pages) if pages else None,
                    page_end=max(pages) if pages else None,
                )
            )
    return drafts


# --- Units: sentences, table rows and token pieces --------------------------------

# The separator written before a unit when it does not start a chunk, and the
# tokens it is assumed to add while packing. A space usually merges into the
# next word's token (" The" is one token, as is "The"); a line break does not.
# The exact count of every finished chunk corrects what these guesses miss.
_SEPARATOR_COST = {"": 0, " ": 0, "\n": 1, "\n\n": 1}


class _Unit:
    """The smallest piece packing moves: a sentence, a table row or a token cut."""

    __slots__ = ("page", "paragraph_tokens", "sep", "text", "tokens", "whole")

    def __init__(
        self, text: str, tokens: int, page: int | None, sep: str, whole: bool
    ) -> None:
        self.text = text
        self.tokens = tokens
        self.page = page
        self.sep = sep
        # Whole sentences may be repeated as overlap; token cuts may not.
        self.whole = whole
        # Set on a paragraph's first unit: the whole paragraph's estimate.
        self.paragraph_tokens = 0


def _sections(
    blocks: Iterable[BlockLike], config: ChunkingConfig
) -> Iterator[tuple[str, list[_Unit]]]:
    """Group body units by section: a heading block or a new heading path ends one."""
    heading = ""
    units: list[_Unit] = []
    previous_kind = ""
    for block in blocks:
        block_heading = " ".join(block.heading.split())
        if block.kind == "heading" or block_heading != heading:
            if units:
                yield heading, units
            units = []
            previous_kind = ""
            heading = block_heading
            if block.kind == "heading":
                continue
        for paragraph in _PARAGRAPH_BREAK.split(block.text):
            if block.kind == "table":
                lines = [" ".join(line.split()) for line in paragraph.splitlines()]
                parts = [line for line in lines if line]
                inner_sep = "\n"
            else:
                normalised = " ".join(paragraph.split())
                parts = split_sentences(normalised) if normalised else []
                inner_sep = " "
            if not parts:
                continue
            if block.kind == "list_item" and previous_kind == "list_item":
                sep = "\n"
            else:
                sep = "\n\n"
            previous_kind = block.kind
            paragraph_units = _units(parts, block.page, sep, inner_sep, config)
            paragraph_units[0].paragraph_tokens = (
                sum(unit.tokens + _SEPARATOR_COST[unit.sep] for unit in paragraph_units)
                - _SEPARATOR_COST[sep]
            )
            units.extend(paragraph_units)
    if units:
        yield heading, units


def _units(
    parts: list[str], page: int | None, sep: str, inner_sep: str, config: ChunkingConfig
) -> list[_Unit]:
    """Turn a paragraph's sentences (or rows) into units no larger than the budget."""
    encode = encoding().encode_ordinary
    units: list[_Unit] = []
    for part in parts:
        tokens = encode(part)
        unit_sep = inner_sep if units else sep
        if len(tokens) <= config.max_tokens:
            units.append(_Unit(part, len(tokens), page, unit_sep, whole=True))
            continue
        for piece, piece_tokens, joined in _token_pieces(
            part, tokens, config.max_tokens
        ):
            units.append(_Unit(piece, piece_tokens, page, unit_sep, whole=False))
            unit_sep = " " if joined else ""
    return units


def _token_pieces(
    text: str, tokens: list[int], limit: int
) -> Iterator[tuple[str, int, bool]]:
    """Cut `text` into pieces of at most `limit` tokens; the last resort.

    Yields (piece, its token count, whether whitespace followed it). Cuts fall
    on token boundaries that are also character boundaries, preferring the
    start of a word within the last quarter of the window, so Latin text
    without punctuation is cut between words and CJK text between characters.
    """
    enc = encoding()
    token_bytes = enc.decode_tokens_bytes(tokens)
    # Character offset of each token's start; UTF-8 continuation bytes do not
    # start a character, so a token beginning with one starts mid-character.
    starts = [
        0,
        *accumulate(sum(1 for b in tb if not 0x80 <= b < 0xC0) for tb in token_bytes),
    ]
    splittable = [not 0x80 <= tb[0] < 0xC0 for tb in token_bytes] + [True]
    word_start = [tb[:1].isspace() for tb in token_bytes] + [True]
    n = len(tokens)
    begin = 0
    while begin < n:
        end = min(begin + limit, n)
        if end < n:
            end = _cut_point(begin, end, limit, splittable, word_start)
        while True:
            raw = text[starts[begin] : starts[end]]
            piece = raw.strip()
            piece_tokens = count_tokens(piece)
            # BPE is not prefix-stable: a piece re-encoded on its own can take
            # a token or two more than the slice it came from.
            if piece_tokens <= limit:
                break
            shorter = max(begin + 1, end - (piece_tokens - limit))
            end = _cut_point(begin, shorter, limit, splittable, word_start)
        if piece:
            joined = end < n and (
                raw[-1:].isspace() or text[starts[end] : starts[end] + 1].isspace()
            )
            yield piece, piece_tokens, joined
        begin = end


def _cut_point(
    begin: int, end: int, limit: int, splittable: list[bool], word_start: list[bool]
) -> int:
    """Return the best token index in (begin, end] to cut at."""
    for i in range(end, max(begin, end - limit // 4), -1):
        if word_start[i] and splittable[i]:
            return i
    for i in range(end, begin, -1):
        if splittable[i]:
            return i
    # Unreachable while limit >= 4: some boundary lies within any 4 tokens.
    return end


# --- Sentences --------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")

# Closing quotes and brackets may follow a terminator; opening ones may precede
# the next sentence. Escapes keep look-alike punctuation visible in the source.
_CLOSERS = "\"'\u201d\u2019\u00bb)]\u300d\u300f\uff09"
_OPENERS = "\"'\u201c\u2018\u00ab([\u00bf\u00a1"
_CJK_TERMINATORS = "\u3002\uff01\uff1f"  # ideographic full stop, ! and ?

# Latin terminators count only before whitespace (so "3.5" and "e.g." inside a
# word never split); CJK ones end a sentence where they stand.
_TERMINATOR = re.compile(
    rf"(?P<latin>[.!?\u2026]+[{re.escape(_CLOSERS)}]*)(?=\s)"
    rf"|(?P<cjk>[{_CJK_TERMINATORS}]+[{re.escape(_CLOSERS)}]*)"
)
_INITIALISM = re.compile(r"(?:[a-z]\.)+[a-z]")

# Words whose trailing period does not end a sentence: titles before a name
# and Latin short forms ("Dr. Smith", "et al. (2019)", "cf. Smith").
_ABBREVIATIONS = frozenset(
    {
        *("dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "mt", "lt", "rev"),
        *("e.g", "i.e", "cf", "vs", "viz", "al", "et", "approx", "ca", "c", "resp"),
        *("incl", "est"),
    }
)
# Words that are abbreviations only before a number ("Fig. 3", "No. 5",
# "Jan. 2024"): "The answer was no." still ends there. "etc.", "Inc." and the
# like are in neither set: they end sentences as often as not, and a lowercase
# next word keeps them joined anyway.
_NUMBERED_ABBREVIATIONS = frozenset(
    {
        *("fig", "figs", "eq", "eqs", "eqn", "no", "nos", "p", "pp", "vol"),
        *("vols", "sec", "sect", "ch", "chap", "art", "tab", "ref", "refs"),
        *("col", "op", "para", "thm", "def", "suppl", "jan", "feb", "mar"),
        *("apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)
_LONGEST_ABBREVIATION = 16


def split_sentences(text: str) -> list[str]:
    """Split whitespace-normalised text into sentences, without any model.

    A regex proposes terminators and a few rules veto them: an abbreviation or
    a single-letter initial before the period, or a lowercase word after it.
    Misses cost little here: a missed boundary makes a longer unit, which the
    token fallback still bounds, and a spurious one only moves a cut.
    """
    sentences: list[str] = []
    start = 0
    for match in _TERMINATOR.finditer(text):
        end = match.end()
        if match.group("latin") and not _ends_sentence(text, match.start(), end):
            continue
        sentence = text[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = end
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def _ends_sentence(text: str, stop: int, end: int) -> bool:
    """Decide whether the Latin terminator at text[stop:end] ends a sentence."""
    # Bounded slices keep the splitter linear on paragraphs of any length.
    following = text[end : end + 4].lstrip().lstrip(_OPENERS)[:1]
    if following.islower():
        return False
    if text[stop:end].rstrip(_CLOSERS) != ".":
        return True
    space = text.rfind(" ", max(0, stop - _LONGEST_ABBREVIATION), stop)
    if space < 0 and stop > _LONGEST_ABBREVIATION:
        return True  # a long unbroken run before the period is no abbreviation
    word = text[space + 1 : stop].lstrip(_OPENERS).lower()
    if word in _ABBREVIATIONS or _INITIALISM.fullmatch(word):
        return False
    if word in _NUMBERED_ABBREVIATIONS and following.isdigit():
        return False
    # "J. Smith", "A. thaliana": a lone capital is an initial.
    return not (len(word) == 1 and word.isalpha() and text[stop - 1].isupper())


# --- Packing ----------------------------------------------------------------------


@dataclass
class _Packed:
    units: list[_Unit]
    overlap: int  # how many leading units repeat the previous chunk
    text: str
    tokens: int


def _join(units: list[_Unit]) -> str:
    return units[0].text + "".join(unit.sep + unit.text for unit in units[1:])


def _estimate(units: list[_Unit]) -> int:
    return sum(unit.tokens for unit in units) + sum(
        _SEPARATOR_COST[unit.sep] for unit in units[1:]
    )


def _pack_section(units: list[_Unit], config: ChunkingConfig) -> list[_Packed]:
    """Pack one section's units into chunks of at most `max_tokens`."""
    limit = config.max_tokens
    queue = deque(units)
    packed: list[_Packed] = []
    overlap: list[_Unit] = []
    while queue:
        chunk = list(overlap)
        n_overlap = len(chunk)
        estimate = _estimate(chunk)
        fresh = 0
        while queue:
            unit = queue[0]
            sep_cost = _SEPARATOR_COST[unit.sep] if chunk else 0
            # A paragraph that fits in a chunk is never split: it either fits
            # in this one or starts the next.
            keep_whole = 0 < unit.paragraph_tokens <= limit
            need = unit.paragraph_tokens if keep_whole else unit.tokens
            if estimate + sep_cost + need > limit:
                if fresh:
                    break
                # Overlap yields to new text rather than force a split.
                while n_overlap and estimate + sep_cost + need > limit:
                    chunk.pop(0)
                    n_overlap -= 1
                    estimate = _estimate(chunk)
                    sep_cost = _SEPARATOR_COST[unit.sep] if chunk else 0
            chunk.append(queue.popleft())
            estimate += sep_cost + unit.tokens
            fresh += 1
        text = _join(chunk)
        tokens = count_tokens(text)
        while tokens > limit and len(chunk) > 1:
            # The estimate missed by a token or two; give back overlap first,
            # then the last unit, which starts the next chunk.
            if n_overlap:
                chunk.pop(0)
                n_overlap -= 1
            else:
                queue.appendleft(chunk.pop())
            text = _join(chunk)
            tokens = count_tokens(text)
        packed.append(_Packed(chunk, n_overlap, text, tokens))
        overlap = _overlap(chunk, config.overlap_tokens) if queue else []
    _merge_tail(packed, config)
    return packed


def _overlap(chunk: list[_Unit], budget: int) -> list[_Unit]:
    """Return the chunk's trailing whole sentences that fit in `budget` tokens."""
    taken: list[_Unit] = []
    used = 0
    for unit in reversed(chunk):
        cost = unit.tokens + (_SEPARATOR_COST[taken[-1].sep] if taken else 0)
        if not unit.whole or used + cost > budget:
            break
        taken.append(unit)
        used += cost
    # A chunk repeated whole inside the next one is duplication, not context.
    if len(taken) == len(chunk):
        taken.pop()
    taken.reverse()
    return taken


def _merge_tail(packed: list[_Packed], config: ChunkingConfig) -> None:
    """Fold a section's tiny last chunk into the one before it, when that fits."""
    if len(packed) < 2 or config.min_tokens == 0:
        return
    last, previous = packed[-1], packed[-2]
    fresh = last.units[last.overlap :]
    if count_tokens(_join(fresh)) >= config.min_tokens:
        return
    units = previous.units + fresh
    text = _join(units)
    tokens = count_tokens(text)
    if tokens <= config.max_tokens + config.min_tokens:
        packed[-2:] = [_Packed(units, previous.overlap, text, tokens)]
