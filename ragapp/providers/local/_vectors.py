"""Array helpers shared by the offline embedding providers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


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
