"""Second stage: re-score the fused top passages sentence by sentence.

A passage embedding averages every sentence in it, so a passage whose one
sentence answers the question competes with its own filler. Embedding each
sentence (with the passage's heading, as at indexing) and keeping the best
match scores the answer sentence itself. With the collection's own model it
reads the sentence vectors kept at indexing; another model costs one
embedding per sentence of the re-scored passages, at query time, so the
benchmark decides whether it is on by default (docs/BENCHMARKS.md). Any
embedding model serves: the collection's own, or a remote one (`openai/...`)
when a key is configured.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ragapp.documents.chunking import SentenceSpan, embedding_text, passage_sentences
from ragapp.documents.models import Chunk, ChunkSentence
from ragapp.providers.embeddings import get_embedding_provider


def sentence_scores(
    query: str, chunks: Sequence[Chunk], *, model: str
) -> dict[int, float]:
    """Return {chunk pk: best cosine similarity of any of its sentences to `query`}.

    Chunks that `model` indexed bring their kept sentence vectors, so only
    the query is embedded; another model (a remote re-scorer) embeds them all.
    """
    dimensions = get_embedding_provider(model).dimensions
    own = [chunk.pk for chunk in chunks if chunk.collection.embedding_model == model]
    kept = {
        pk: sentences
        for pk, sentences in kept_sentence_vectors(own).items()
        if sentences.vectors.shape[1] == dimensions
    }
    best: dict[int, float] = {}
    for scored in sentence_similarities(
        query,
        [(chunk.pk, chunk.heading, chunk.text) for chunk in chunks],
        model=model,
        kept=kept,
    ):
        best[scored.owner] = max(best.get(scored.owner, -1.0), scored.score)
    return best


@dataclass(frozen=True)
class ScoredSentence:
    owner: Hashable
    sentence: str
    score: float


@dataclass(frozen=True)
class KeptSentences:
    """A chunk's sentence vectors from indexing, and where each sentence lies."""

    spans: list[tuple[int, int]]
    vectors: np.ndarray

    def matches(self, spans: Sequence[SentenceSpan]) -> bool:
        """Whether these vectors are of exactly these sentences (same split)."""
        return self.spans == [(span.start, span.end) for span in spans]


def kept_sentence_vectors(chunk_ids: Iterable[int]) -> dict[int, KeptSentences]:
    """Return {chunk pk: its kept sentences} (ChunkSentence rows, in order).

    Only for chunks a search already returned to this user: it reads
    vectors and offsets, never text, of the ids it is given.
    """
    rows: dict[int, list[tuple[int, int, object]]] = {}
    for chunk_id, start, end, vector in (
        ChunkSentence.objects.filter(chunk_id__in=list(chunk_ids))
        .order_by("chunk_id", "ordinal")
        .values_list("chunk_id", "start", "end", "embedding")
    ):
        rows.setdefault(chunk_id, []).append((start, end, vector))
    return {
        pk: KeptSentences(
            spans=[(start, end) for start, end, _ in kept],
            vectors=np.asarray([_floats(v) for _, _, v in kept], dtype=np.float32),
        )
        for pk, kept in rows.items()
    }


def _floats(vector: object) -> list[float]:
    to_list = getattr(vector, "to_list", None)
    return to_list() if to_list else list(vector)  # type: ignore[call-overload]


def sentence_similarities(
    query: str,
    passages: Sequence[tuple[Hashable, str, str]],
    *,
    model: str,
    max_total: int | None = None,
    kept: Mapping[Hashable, KeptSentences] | None = None,
) -> list[ScoredSentence]:
    """Score every sentence of (owner, heading, text) passages against `query`.

    Sentences embedded at indexing (`kept`, by owner, from
    `kept_sentence_vectors`) are read, not embedded again; the rest are
    embedded in one batch, each under its passage's heading as at indexing.
    The extractive answerer picks its sentences with these scores too.
    `max_total` bounds the sentences embedded here (passages in the order
    given, best first), and so the time.
    """
    kept = kept or {}
    owners: list[Hashable] = []
    sentences: list[str] = []
    vectors: list[np.ndarray | None] = []
    texts: list[str] = []
    for owner, heading, text in passages:
        spans = passage_sentences(text)
        stored = kept.get(owner)
        if stored is not None and stored.matches(spans):
            owners.extend(owner for _ in spans)
            sentences.extend(span.text for span in spans)
            vectors.extend(stored.vectors)
            continue
        for sentence in spans:
            if max_total is not None and len(texts) >= max_total:
                break
            owners.append(owner)
            sentences.append(sentence.text)
            vectors.append(None)
            texts.append(embedding_text(heading, sentence.text))
    if not owners:
        return []
    provider = get_embedding_provider(model)
    query_vector = np.asarray(provider.embed_query(query), dtype=np.float32)
    embedded = iter(
        np.asarray(provider.embed(texts), dtype=np.float32) if texts else []
    )
    matrix = np.stack([next(embedded) if v is None else v for v in vectors])
    similarities = matrix @ query_vector
    return [
        ScoredSentence(owner=owner, sentence=sentence, score=float(score))
        for owner, sentence, score in zip(
            owners, sentences, similarities.tolist(), strict=True
        )
    ]
