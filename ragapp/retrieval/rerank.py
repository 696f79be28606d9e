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

from collections.abc import Sequence

import numpy as np

from ragapp.documents.chunking import embedding_text, split_sentences
from ragapp.documents.models import Chunk
from ragapp.providers.embeddings import get_embedding_provider

# A long passage is cut to this many sentences: bounds the query's cost.
MAX_SENTENCES_PER_PASSAGE = 24


def sentence_scores(
    query: str, chunks: Sequence[Chunk], *, model: str
) -> dict[int, float]:
    """Return {chunk pk: best cosine similarity of any of its sentences to `query`}."""
    owners: list[int] = []
    texts: list[str] = []
    for chunk in chunks:
        sentences = split_sentences(" ".join(chunk.text.split()))
        for sentence in sentences[:MAX_SENTENCES_PER_PASSAGE] or [chunk.text]:
            if sentence.strip():
                owners.append(chunk.pk)
                texts.append(embedding_text(chunk.heading, sentence))
    if not texts:
        return {}
    provider = get_embedding_provider(model)
    query_vector = np.asarray(provider.embed_query(query), dtype=np.float32)
    similarities = np.asarray(provider.embed(texts), dtype=np.float32) @ query_vector
    best: dict[int, float] = {}
    for pk, similarity in zip(owners, similarities.tolist(), strict=True):
        best[pk] = max(best.get(pk, -1.0), similarity)
    return best
