"""Fuse ranked lists of (id, score) into one ranking.

Reciprocal rank fusion needs no tuning but throws the scores away; a weighted
sum of z-scored lists keeps how far ahead a passage is and, with the weight
tuned on SciFact's training queries, ranks about two points of nDCG@10 better
(shared/eval/REFERENCE_RUN.md; ours in docs/BENCHMARKS.md).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

Ranking = Sequence[tuple[int, float]]


def reciprocal_rank(
    rankings: Mapping[str, Ranking], *, k: int = 60
) -> dict[int, float]:
    """Sum 1 / (k + rank) over the lists each id appears in."""
    fused: dict[int, float] = {}
    for ranking in rankings.values():
        for rank, (key, _) in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused


def _standardised(ranking: Ranking) -> dict[int, float]:
    scores = [score for _, score in ranking]
    if not scores:
        return {}
    mean = statistics.fmean(scores)
    spread = statistics.pstdev(scores) or 1.0
    return {key: (score - mean) / spread for key, score in ranking}


def weighted_z(
    rankings: Mapping[str, Ranking], *, weights: Mapping[str, float]
) -> dict[int, float]:
    """Sum each list's weight times the id's z-score within that list.

    An id missing from a list scored below everything the list returned, so
    it gets that list's lowest z-score rather than nothing.
    """
    standardised = {name: _standardised(ranking) for name, ranking in rankings.items()}
    keys = {key for scores in standardised.values() for key in scores}
    fused = dict.fromkeys(keys, 0.0)
    for name, scores in standardised.items():
        if not scores:
            continue
        floor = min(scores.values())
        weight = weights.get(name, 0.0)
        for key in keys:
            fused[key] += weight * scores.get(key, floor)
    return fused
