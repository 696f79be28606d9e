"""Calibrate "not in your documents": the thresholds of the offline answerer, on SciFact.

The extractive answerer (ragapp/answers/extractive.py) quotes the sentences
of the retrieved passages closest to the question and says the documents do
not answer when even the best is below `RAGAPP_EXTRACTIVE_MIN_SCORE`; before
it, the loop says so when no passage reaches `RAGAPP_ANSWER_MIN_RELEVANCE`
(cosine of passage and query). Each threshold trades answering against
refusing, so it is set from data:

- answerable: a SciFact query whose relevant abstract is among the passages
  the app retrieves for it (the same `chunk_search`, as a plain reader);
- unanswerable: the same query with its relevant abstracts taken out of the
  retrieved passages, i.e. a collection that lacks the answer but has the
  closest neighbours on the same topic: the hard case.

A threshold answers when the best score reaches it. Refusing a question the
documents do answer is the costlier error for staff (they lose the answer;
a near-miss quote is visibly a quote and says it is the closest match), so
each threshold is the highest that still answers a set share of the
answerable train queries: 90% for the sentence score, and all of them for the
passage gate, which only spares the model clearly unrelated questions (a
model can say itself that the passages do not answer). The report gives the test
figures at that point and at the best balanced accuracy, the whole curve as
a plot, and how often the first quoted sentence is from a relevant abstract.

Needs the SciFact collection that `bench/beir.py` loads into var/bench/beir
(run that first).

    .venv/bin/python bench/extractive.py [--train-sample 300] [--reuse]

The per-query scores are kept in var/bench/extractive-cases.json; `--reuse`
re-reads them instead of searching again. Writes docs/bench/extractive.md and
docs/bench/extractive.png; the last stdout line is key=value pairs.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, dataclass
from typing import Any

from _common import (
    BENCH_DOCS,
    REPO,
    command_line,
    django_setup,
    eval_path,
    private_stack,
    report_write,
)
from beir import (
    DEFAULT_MODEL,
    MODELS,
    WORKDIR,
    beir_ids,
    read_jsonl,
    read_qrels,
    reader,
)


@dataclass(frozen=True)
class Case:
    """Best scores of one query, with and without its relevant abstracts."""

    sentence_with: float
    sentence_without: float
    passage_with: float
    passage_without: float
    first_quote_relevant: bool


def measure(
    user: Any, collection: Any, queries: dict[str, str], qrels: dict, ids: dict
) -> list[Case]:
    from django.conf import settings

    from ragapp.answers.prompts import fit_passages
    from ragapp.retrieval.rerank import sentence_similarities
    from ragapp.retrieval.search import chunk_search

    cases = []
    for number, (qid, text) in enumerate(queries.items(), 1):
        passages = fit_passages(
            chunk_search(
                user=user,
                query=text,
                collection_ids=[collection.pk],
                limit=settings.ANSWER_PASSAGES,
            ),
            budget_tokens=settings.ANSWER_CONTEXT_TOKENS,
        )
        relevant = {item.passage.chunk_id for item in passages} & {
            pk for pk, doc in ids.items() if doc in qrels[qid]
        }
        if not relevant:
            continue  # not answerable from what was retrieved: no pair to compare
        scored = sentence_similarities(
            text,
            [(p.passage.chunk_id, p.passage.heading, p.passage.text) for p in passages],
            model=collection.embedding_model,
            max_total=settings.EXTRACTIVE_MAX_SENTENCES,
        )
        scored.sort(key=lambda s: -s.score)
        without = [s.score for s in scored if s.owner not in relevant]
        vector = {p.passage.chunk_id: p.passage.vector_score or 0.0 for p in passages}
        cases.append(
            Case(
                sentence_with=scored[0].score,
                sentence_without=max(without, default=0.0),
                passage_with=max(vector.values()),
                passage_without=max(
                    (v for pk, v in vector.items() if pk not in relevant), default=0.0
                ),
                first_quote_relevant=scored[0].owner in relevant,
            )
        )
        if number % 50 == 0:
            print(f"  {number}/{len(queries)} queries", flush=True)
    return cases


def rates(
    with_: list[float], without: list[float], threshold: float
) -> tuple[float, float]:
    """(share of answerable answered, share of unanswerable refused)."""
    answered = sum(s >= threshold for s in with_) / len(with_)
    refused = sum(s < threshold for s in without) / len(without)
    return answered, refused


GRID = [round(0.05 + 0.01 * i, 2) for i in range(76)]
CASES_FILE = REPO / "var" / "bench" / "extractive-cases.json"


def balanced_threshold(with_: list[float], without: list[float]) -> float:
    return max(GRID, key=lambda t: (sum(rates(with_, without, t)), -t))


def answering_threshold(with_: list[float], rate: float) -> float:
    """The highest threshold that still answers `rate` of the answerable."""
    return max(t for t in GRID if sum(s >= t for s in with_) / len(with_) >= rate)


def plot(splits: dict[str, list[Case]], marks: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = splits["test"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, name in zip(axes, ("sentence", "passage"), strict=True):
        with_ = [getattr(c, f"{name}_with") for c in test]
        without = [getattr(c, f"{name}_without") for c in test]
        curve = [rates(with_, without, t) for t in GRID]
        axis.plot(GRID, [a for a, _r in curve], label="answerable answered")
        axis.plot(GRID, [r for _a, r in curve], label="unanswerable refused")
        axis.axvline(marks[name], color="grey", linestyle="--", label="default")
        axis.set_title(f"{name} score (SciFact test)")
        axis.set_xlabel("threshold")
    axes[0].set_ylabel("share of queries")
    axes[0].legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(BENCH_DOCS / "extractive.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-sample", type=int, default=300)
    parser.add_argument("--reuse", action="store_true", help="re-read kept scores")
    args = parser.parse_args()
    if args.reuse:
        django_setup(WORKDIR, broker_url="memory://")
        kept = json.loads(CASES_FILE.read_text())
        splits = {name: [Case(**c) for c in cases] for name, cases in kept.items()}
        report(splits)
        return
    scifact = eval_path("scifact", "corpus.jsonl")
    with private_stack(WORKDIR, broker_url="memory://", discard=False):
        from ragapp.documents.models import Collection

        collection = Collection.objects.filter(slug=MODELS[DEFAULT_MODEL]).first()
        if collection is None or collection.description.startswith("loading"):
            raise SystemExit("Load SciFact first: .venv/bin/python bench/beir.py")
        user = reader([collection])
        ids = beir_ids(collection)
        queries = {q["_id"]: q["text"] for q in read_jsonl(scifact / "queries.jsonl")}
        splits = {}
        for split in ("train", "test"):
            qrels = read_qrels(scifact / "qrels" / f"{split}.tsv")
            chosen = list(qrels)
            if split == "train" and args.train_sample < len(chosen):
                chosen = random.Random(13).sample(chosen, args.train_sample)
            print(f"{split}: {len(chosen)} queries", flush=True)
            splits[split] = measure(
                user, collection, {q: queries[q] for q in chosen}, qrels, ids
            )
    CASES_FILE.write_text(
        json.dumps({k: [asdict(c) for c in v] for k, v in splits.items()})
    )
    report(splits)


def report(splits: dict[str, list[Case]]) -> None:
    from django.conf import settings

    current = {
        "sentence": settings.EXTRACTIVE_MIN_SCORE,
        "passage": settings.ANSWER_MIN_RELEVANCE,
    }
    train, test = splits["train"], splits["test"]
    lines = []
    figures: dict[str, object] = {}
    for name, rate in (("sentence", 0.9), ("passage", 1.0)):
        train_with = [getattr(c, f"{name}_with") for c in train]
        train_without = [getattr(c, f"{name}_without") for c in train]
        with_ = [getattr(c, f"{name}_with") for c in test]
        without = [getattr(c, f"{name}_without") for c in test]
        chosen = answering_threshold(train_with, rate)
        balanced = balanced_threshold(train_with, train_without)
        for label, threshold in (
            (f"answers {rate:.0%} of train", chosen),
            ("best balanced accuracy on train", balanced),
            ("setting now", current[name]),
        ):
            answered, refused = rates(with_, without, threshold)
            lines.append(
                f"| {name} | {label} | {threshold:.2f} | {answered:.1%} | {refused:.1%} |"
            )
        answered, refused = rates(with_, without, chosen)
        figures[f"{name}_threshold"] = chosen
        figures[f"{name}_answered"] = round(answered, 3)
        figures[f"{name}_refused"] = round(refused, 3)
    plot(splits, current)
    first_relevant = sum(c.first_quote_relevant for c in test) / len(test)
    figures["first_quote_relevant"] = round(first_relevant, 3)
    text = f"""# Extractive answerer: when to say "not in your documents"

Command: `{command_line()}`. Queries whose relevant abstract was retrieved
among the {len(test)} test queries kept (train: {len(train)} kept of a
sample); unanswerable = the same query with its relevant abstracts removed
from the retrieved passages (the hard case: same topic, no answer).
Thresholds chosen on train, reported on test; the curve over all thresholds
is in [extractive.png](extractive.png).

| score | threshold | value | answerable answered (test) | unanswerable refused (test) |
| --- | --- | ---: | ---: | ---: |
{chr(10).join(lines)}

The first quoted sentence comes from a relevant abstract in {first_relevant:.1%}
of the answerable test queries.
"""
    report_write("extractive.md", text, figures)


if __name__ == "__main__":
    main()
