"""Second stage: re-score the fused top passages sentence by sentence.

A passage embedding averages every sentence in it, so a passage whose one
sentence answers the question competes with its own filler. Embedding each
sentence (with the passage's heading, as at indexing) and keeping the best
match scores the answer sentence itself. It costs one embedding per sentence
of the re-scored passages, at query time, so the benchmark decides whether it
is on by default (docs/BENCHMARKS.md). Any embedding model serves: the
collection's own, or a remote one (`openai/...`) when a key is configured.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from ragapp.documents.chunking import embedding_text, passage_sentences
from ragapp.documents.models import Chunk
from ragapp.providers.embeddings import get_embedding_provider


def sentence_scores(
    query: str, chunks: Sequence[Chunk], *, model: str
) -> dict[int, float]:
    """Return {chunk pk: best cosine similarity of any of its sentences to `query`}."""
    best: dict[int, float] = {}
    for scored in sentence_similarities(
        query, [(chunk.pk, chunk.heading, chunk.text) for chunk in chunks], model=model
    ):
        best[scored.owner] = max(best.get(scored.owner, -1.0), scored.score)
    return best


@dataclass(frozen=True)
class ScoredSentence:
    owner: Hashable
    sentence: str
    score: float


def sentence_similarities(
    query: str,
    passages: Sequence[tuple[Hashable, str, str]],
    *,
    model: str,
    max_total: int | None = None,
) -> list[ScoredSentence]:
    """Score every sentence of (owner, heading, text) passages against `query`.

    One batch of embeddings for all sentences, each embedded under its
    passage's heading as at indexing. The extractive answerer picks its
    sentences with these scores too. `max_total` bounds the sentences
    embedded (passages in the order given, best first), and so the time.
    """
    owners: list[Hashable] = []
    sentences: list[str] = []
    texts: list[str] = []
    for owner, heading, text in passages:
        for sentence in passage_sentences(text):
            if max_total is not None and len(texts) >= max_total:
                break
            owners.append(owner)
            sentences.append(sentence.text)
            texts.append(embedding_text(heading, sentence.text))
    if not texts:
        return []
    provider = get_embedding_provider(model)
    query_vector = np.asarray(provider.embed_query(query), dtype=np.float32)
    similarities = np.asarray(provider.embed(texts), dtype=np.float32) @ query_vector
    return [
        ScoredSentence(owner=owner, sentence=sentence, score=float(score))
        for owner, sentence, score in zip(
            owners, sentences, similarities.tolist(), strict=True
        )
    ]
