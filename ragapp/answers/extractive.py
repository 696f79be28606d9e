"""The offline answerer: the document sentences that best answer the question, quoted and cited.

No instruct model good enough to answer ships in a PyPI package (DESIGN.md), so
without a chat model ragapp does not pretend to write: it picks the sentences
of the retrieved passages closest to the question by the collection's own
embedder, quotes them with their citation markers and says that it did so.
Below a calibrated similarity it says the documents do not answer, which is
also what keeps it from quoting something merely on the same topic.
"""

from __future__ import annotations

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


def extract_answer(
    question: str,
    passages: Sequence[NumberedPassage],
    *,
    models: Mapping[int, str],
    threshold: float,
    max_sentences: int = 3,
    margin: float = 0.12,
    max_scored: int | None = None,
) -> ExtractiveAnswer:
    """Pick up to `max_sentences` sentences scoring ≥ `threshold` and within
    `margin` of the best, so a strong answer is not diluted by weak company.

    `models` maps collection id → embedding model; sentences are scored by
    the model that embedded their passage, with the vectors kept at indexing
    where there are any. At most `max_scored` other sentences are embedded,
    from the best-ranked passages down: embedding them is most of the time
    to first word. An empty `sentences` means the
    documents do not answer.
    """
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
    scored.sort(key=lambda s: (-s.score, s.owner))
    best = scored[0].score if scored else 0.0
    chosen: list[ScoredSentence] = []
    seen: set[str] = set()
    for candidate in scored:
        if len(chosen) == max_sentences:
            break
        if candidate.score < max(threshold, best - margin):
            break
        key = " ".join(candidate.sentence.lower().split())
        if key in seen:  # overlapping chunks repeat sentences
            continue
        seen.add(key)
        chosen.append(candidate)
    return ExtractiveAnswer(sentences=chosen, best_score=best)
