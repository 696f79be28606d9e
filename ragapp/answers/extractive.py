"""The offline answerer: the document sentences that best answer the question, quoted and cited.

No instruct model good enough to answer ships in a PyPI package (DESIGN.md), so
without a chat model ragapp does not pretend to write: it picks the sentences
of the retrieved passages closest to the question by the collection's own
embedder, quotes them with their citation markers and says that it did so.
Below a calibrated similarity it says the documents do not answer, which is
also what keeps it from quoting something merely on the same topic.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ragapp.answers.prompts import NumberedPassage
from ragapp.retrieval.rerank import (
    ScoredSentence,
    kept_sentence_vectors,
    sentence_similarities,
)

_BRACKETED_NUMBERS = re.compile(r"\[([\d\s,;]+)\]")

INTRO = (
    "Extractive answer: no language model is configured, so these are the "
    "sentences of your documents that best match the question, quoted as written."
)


@dataclass(frozen=True)
class ExtractiveAnswer:
    """The chosen sentences (best first) and the best score seen."""

    sentences: list[ScoredSentence]
    best_score: float

    def text(self) -> str:
        quoted = [f"“{_unmarked(s.sentence)}” [{s.owner}]" for s in self.sentences]
        return "\n\n".join([INTRO, *quoted])


def _unmarked(sentence: str) -> str:
    """A document's own "[2]" (a reference list) must not read as a citation."""
    return _BRACKETED_NUMBERS.sub(r"(\1)", sentence)


# --- what the question asks for -------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
_DIGIT = re.compile(r"\d")
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
# Asks for a quantity, a date or a year: the evidence must hold a number.
_QUANTITY = re.compile(
    r"\b(?:how (?:many|much|long|often|old|large|big|far|high|low)"
    r"|what (?:percentage|percent|year|date|amount|score|rate|number|fee|price)"
    r"|which year|what is the (?:amount|rate|number|percentage|limit|maximum|minimum)"
    r"|by what date|in what year|within how many)\b",
    re.IGNORECASE,
)
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "may",
        "might",
        "must",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "shall",
        "should",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "too",
        "under",
        "up",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "about",
        "after",
        "also",
        "any",
        "all",
        "each",
        "per",
        "via",
        "s",
    ]
)


_COUNTED = re.compile(r"\bhow many ([^\W\d_]{3,})", re.IGNORECASE)
# "When" alone may be answered by a condition or a duration ("within one
# hour"); only a question for a date needs one.
_WHEN = re.compile(r"\b(?:by|on|from|until)? ?what date\b", re.IGNORECASE)
_PERCENT = re.compile(r"\b(?:what|which) (?:percentage|percent|share)\b", re.IGNORECASE)
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|"
    "november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)


def _answer_shape(question: str) -> re.Pattern[str] | None:
    """What a sentence must hold to answer a question for a quantity or a date.

    "How many hours" wants a number of hours ("24 hours", "a 72-hour"), not
    any number; "by what date" a date; "what percentage" a percentage; other
    questions for an amount, a rate or a score a number. None: any sentence.
    """
    counted = _COUNTED.search(question)
    if counted and counted.group(1).casefold() not in _STOPWORDS:
        unit = re.escape(counted.group(1).casefold().rstrip("s")[:5])
        number = (
            r"(?:\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|twelve)"
        )
        return re.compile(rf"\b{number}[\s-]*(?:\w+[\s-]+)?{unit}", re.IGNORECASE)
    if _WHEN.search(question):
        return re.compile(rf"\b(?:(?:19|20)\d\d|{_MONTHS})\b", re.IGNORECASE)
    if _PERCENT.search(question):
        return re.compile(r"\d\s*(?:%|percent)", re.IGNORECASE)
    if _QUANTITY.search(question):
        return _DIGIT
    return None


def _terms(text: str) -> set[str]:
    """Content words, cut to six letters so inflections meet ("transactions")."""
    return {
        word[:6]
        for word in _WORD.findall(text.casefold())
        if word not in _STOPWORDS and (len(word) > 1 or word.isdigit())
    }


@dataclass(frozen=True)
class Weights:
    """How sentence evidence is weighed; bench/qa.py tunes these on its tune split."""

    coverage: float = 0.5  # share of the question's words, by rarity, in the sentence
    rank: float = 0.06  # the passage's retrieval rank, as a prior: rank / number
    same_passage_margin: float = 0.12  # company from the best sentence's passage
    other_passage_margin: float = 0.04  # company from any other passage
    min_coverage: float = 0.0  # below it, the documents do not answer
    # The least similarity of the best sentence holding an asked-for quantity.
    shaped_floor: float = 0.25
    # A table row holding a figure the question names, or the bracket
    # ("At least: 63,450 | But less than: 63,500") it falls in.
    row_figure: float = 0.3


def extract_answer(
    question: str,
    passages: Sequence[NumberedPassage],
    *,
    models: Mapping[int, str],
    threshold: float,
    max_sentences: int = 3,
    max_scored: int | None = None,
    weights: Weights | None = None,
    asked: str | None = None,
) -> ExtractiveAnswer:
    """Quote the sentences that answer `question`, from the passage that holds it.

    Each sentence is scored by its embedding's similarity to the question
    (the model that embedded its passage, with the vectors kept at indexing
    where there are any; at most `max_scored` others are embedded, best-ranked
    passages first) plus the share of the question's words it contains,
    weighted by how rare each is among the candidates, so a sentence merely
    on the topic loses to the one that names what was asked, plus a small
    prior for its passage's rank. The best sentence decides the passage;
    company comes from that passage within a wide margin and from others
    only within a narrow one, which is what keeps citations on the page that
    answers. The documents do not answer (an empty `sentences`) when the
    best similarity is below `threshold`, when a question asking for a
    number or date finds no sentence holding one, or when a year it names
    is in no candidate. `asked` is the question as the person typed it,
    when `question` is a follow-up made standalone: what it asks for (a
    number of days, a date) is read from it.
    """
    weights = weights or Weights()
    groups: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for item in passages:
        p = item.passage
        groups[models[p.collection_id]].append((item.number, p.heading, p.text))
    by_chunk = kept_sentence_vectors(item.passage.chunk_id for item in passages)
    kept = {
        item.number: by_chunk[item.passage.chunk_id]
        for item in passages
        if item.passage.chunk_id in by_chunk
    }
    scored: list[ScoredSentence] = []
    for model, group in groups.items():
        scored.extend(
            sentence_similarities(
                question, group, model=model, max_total=max_scored, kept=kept
            )
        )
    best_similarity = max((s.score for s in scored), default=0.0)
    typed = asked or question
    shape = _answer_shape(typed)
    evidence = _weighed(question, scored, weights, typed=typed, shape=shape)
    if (
        not evidence
        or best_similarity < threshold
        or evidence[0].coverage < weights.min_coverage
    ):
        return ExtractiveAnswer(sentences=[], best_score=best_similarity)
    top = evidence[0]
    chosen: list[ScoredSentence] = []
    seen: set[str] = set()
    for candidate in evidence:
        if len(chosen) == max_sentences:
            break
        same_passage = candidate.sentence.owner == top.sentence.owner
        if not same_passage and _ROW_CELL in top.sentence.sentence:
            continue  # rows of another table answer another lookup
        margin = (
            weights.same_passage_margin
            if same_passage
            else weights.other_passage_margin
        )
        # A question for a quantity has its candidates narrowed to sentences
        # holding one; once the topic passed the threshold, the best of them
        # may be less like the question as a whole (a follow-up made
        # standalone: "meals per day? and within how many days?").
        floor = weights.shaped_floor if candidate is top and shape else threshold
        if candidate.value < top.value - margin or candidate.sentence.score < floor:
            continue
        key = " ".join(candidate.sentence.sentence.lower().split())
        if key in seen:  # overlapping chunks repeat sentences
            continue
        seen.add(key)
        chosen.append(candidate.sentence)
    return ExtractiveAnswer(sentences=chosen, best_score=best_similarity)


_FIGURE = re.compile(r"(?<![\w.,])\$?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w,]*\d)")
_ROW_CELL = " | "


def _figures(text: str) -> set[float]:
    """The figures a question names ("$63,480", "12,120", "2.5"), not years."""
    found = set()
    for match in _FIGURE.finditer(text):
        whole = match.group(1).replace(",", "")
        if _YEAR.fullmatch(whole) and "," not in match.group(1):
            continue
        found.add(float(whole + ("." + match.group(2) if match.group(2) else "")))
    return found


def _row_holds(sentence: str, figures: set[float]) -> bool:
    """Whether a table row holds one of the figures, or brackets one.

    Only cell values count, not their headers ("If line 43 ... At least:
    63,450"). A bracket is a row's first two values, rising: the figure is at
    least the first and less than the second, as in tax and rate tables.
    """
    if not figures or _ROW_CELL not in sentence:
        return False
    values = [
        value
        for cell in sentence.split(_ROW_CELL)
        for value in sorted(_figures(cell.rpartition(": ")[2]))[:1]
    ]
    if figures & set(values):
        return True
    if len(values) >= 2 and values[0] < values[1]:
        return any(values[0] <= figure < values[1] for figure in figures)
    return False


@dataclass(frozen=True)
class _Evidence:
    sentence: ScoredSentence
    coverage: float
    value: float


def _weighed(
    question: str,
    scored: Sequence[ScoredSentence],
    weights: Weights,
    *,
    typed: str,
    shape: re.Pattern[str] | None,
) -> list[_Evidence]:
    """The sentences that may answer, best first; [] when none can.

    `shape` (from `_answer_shape` of the `typed` question) is what an
    answering sentence must hold, if anything.
    """
    asked = _terms(question)
    terms = [_terms(s.sentence) for s in scored]
    count = len(scored)
    document_frequency = {t: sum(t in ts for ts in terms) for t in asked}
    rarity = {t: math.log((count + 1) / (document_frequency[t] + 0.5)) for t in asked}
    total = sum(rarity.values()) or 1.0
    years = set(_YEAR.findall(typed))
    if years and not any(years & set(_YEAR.findall(s.sentence)) for s in scored):
        return []  # "in 2018" where every candidate speaks of other years
    figures = _figures(typed)
    evidence = []
    for sentence, found in zip(scored, terms, strict=True):
        if shape is not None and not shape.search(_unmarked(sentence.sentence)):
            continue
        coverage = sum(rarity[t] for t in asked & found) / total
        value = (
            sentence.score
            + weights.coverage * coverage
            + weights.rank / max(int(sentence.owner), 1)
            + weights.row_figure * _row_holds(sentence.sentence, figures)
        )
        evidence.append(_Evidence(sentence, coverage, value))
    evidence.sort(key=lambda e: (-e.value, e.sentence.owner))
    return evidence
