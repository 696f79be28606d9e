"""What the offline embedding providers share: array helpers and a base class."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from ragapp.providers.base import validate_texts


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Return `matrix` with each row scaled to length 1 (zero rows stay zero).

    The floor on the norm is sentence-transformers' `Normalize` (eps=1e-12): it
    keeps a degenerate row from turning into NaNs that pgvector cannot order.
    """
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int
) -> Iterator[list[int]]:
    """Yield positions in batches of similar length, longest first.

    Every row of a batch is padded to its longest member, so grouping by length
    cuts wasted work; the longest batch runs first so a memory problem shows at
    once rather than at the end of a long import.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


class LocalEmbedder:
    """What the in-process embedders share: validation, prefixes, batching size.

    Subclasses set `model`, `dimensions`, `max_input_tokens` and implement
    `_encode(texts) -> (n, dimensions) float32 array of unit rows`.
    """

    model: str
    dimensions: int
    max_input_tokens: int
    default_batch_size = 8
    # Instruction prefixes for e5-style models; MiniLM and WordLlama use none.
    query_prefix = ""
    document_prefix = ""

    # Recent query vectors: one question is embedded by retrieval and again by
    # the sentence scoring of the extractive answer or re-score.
    query_cache_size = 64

    def __init__(self, *, batch_size: int | None = None) -> None:
        if batch_size is None:
            batch_size = self.default_batch_size
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1.")
        self.batch_size = batch_size
        self._queries: OrderedDict[str, list[float]] = OrderedDict()
        self._queries_lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Return one unit vector per text, in input order."""
        texts = validate_texts(texts)
        if not texts:
            return []
        return self._encode([self.document_prefix + text for text in texts]).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Return the unit vector of a search query."""
        validate_texts([text])
        with self._queries_lock:
            if text in self._queries:
                self._queries.move_to_end(text)
                return list(self._queries[text])
        vector = self._encode_query(self.query_prefix + text).tolist()
        with self._queries_lock:
            self._queries[text] = vector
            while len(self._queries) > self.query_cache_size:
                self._queries.popitem(last=False)
        return list(vector)

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _encode_query(self, text: str) -> np.ndarray:
        """Embed one search query; a subclass may run it differently from batches."""
        return self._encode([text])[0]
