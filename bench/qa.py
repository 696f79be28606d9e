"""Answer quality on our own labelled questions over the five eval PDFs.

The questions (bench/qa/questions.jsonl, checked against the page text by
bench/qa_labels.py) carry gold pages, which are physical PDF page numbers,
and short answer facts. The five PDFs go through the app's own pipeline
(parse, chunk, embed) into one collection; then, per question:

- retrieval: `chunk_search` as a reader of that collection; a passage hits
  when it is from the question's document and its page range holds a gold
  page. hit@5, hit@10 and MRR over the answerable questions;
- the answer: `ask()` as staff would ask, read to its end. Citation
  precision is the share of the answer's citations (pooled over answerable
  questions) whose document and page range hold a gold page; fact recall
  the share of expected facts found in the answer's text (normalised as
  the label checker does); a false decline is an answerable question
  answered "not in your documents", a true decline an unanswerable one.

Half the questions are for tuning and half only for measuring
(`split` in the set, fixed when the questions were written); the report
gives both, and figures quoted as results come from "measure". Offline by
default (the extractive answerer); with `--model`, the configured
OpenAI-compatible server answers (`OPENAI_BASE_URL`, `RAGAPP_CHAT_MODEL`,
and `OPENAI_API_KEY` if it needs one), measured the same way.

    .venv/bin/python bench/qa.py [--reuse] [--model | --stub] [--split measure]
        [--questions mine.jsonl --documents ~/our-pdfs]

`--stub` answers with the hostile model stub (tests/model_stub.py), which
cites passage [1] and forges a marker [42]: it proves the mechanics (the
forged marker dropped, markers mapped to their passages' pages, the
relevance gate), not quality. `--questions` and `--documents` measure your own documents the same way:
write questions in the same JSON-lines format (check them with
`bench/qa_labels.py`'s rules) naming files in the `--documents` folder.

`--reuse` keeps the indexed PDFs in var/bench/qa for the next run (the
first run indexes about 260 pages: a few minutes on two cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from _common import REPO, command_line, eval_path, private_stack, report_write
from qa_labels import Question, contains, load_questions, normalise_variants

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

DATA_DIR = REPO / "var" / "bench" / "qa"


@dataclass
class Outcome:
    """What the app did with one question."""

    question: Question
    rank: int | None = None  # 1-based rank of the first passage on a gold page
    citations: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    answer: str = ""
    status: str = ""
    markers: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def answerable(self) -> bool:
        return self.question.answerable

    @property
    def declined(self) -> bool:
        return self.status == "not_found"

    def on_gold(self, document: str, start: int | None, end: int | None) -> bool:
        if document != self.question.document or start is None:
            return False
        last = end or start
        return any(start <= page <= last for page in self.question.gold_pages)

    def cited_on_gold(self) -> int:
        return sum(self.on_gold(*c) for c in self.citations)

    def facts_found(self) -> int:
        return sum(fact_in(self.answer, fact) for fact in self.question.facts)


def fact_in(answer: str, fact: str) -> bool:
    """Whether `fact` is in `answer`, matched as the label checker matches pages."""
    return any(
        contains(text, wanted)
        for text in normalise_variants(answer)
        for wanted in normalise_variants(fact)
    )


# --- the corpus ------------------------------------------------------------------


def corpus_ready(
    documents: Iterable[str], folder: Path | None = None
) -> tuple[AbstractBaseUser, int, dict[int, str]]:
    """Index the `documents` (file names in `folder`, by default the eval PDFs)
    once; return a reader, the collection and the documents' names."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from ragapp.documents import ingestion, services
    from ragapp.documents.models import Collection, Document

    documents = sorted(set(documents))
    pdfs = folder or eval_path("pdfs", documents[0])
    group, _ = Group.objects.get_or_create(name="QA bench readers")
    user, _ = get_user_model().objects.get_or_create(username="qa-bench")
    user.groups.add(group)
    collection, _ = Collection.objects.get_or_create(
        slug="qa-bench", defaults={"name": "Eval PDFs"}
    )
    collection.reader_groups.add(group)
    for name in documents:
        with (pdfs / name).open("rb") as stream:
            outcome = services.document_upload(
                collection=collection, stream=stream, filename=name
            )
        document = outcome.document
        if document.status != Document.Status.READY:
            started = time.perf_counter()
            ingestion.document_ingest(document_id=document.pk)
            document.refresh_from_db()
            print(
                f"indexed {name}: {document.status} in "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
        if document.status != Document.Status.READY:
            raise SystemExit(f"{name} did not index: {document.status_reason}")
    names = dict(
        Document.objects.filter(collection=collection).values_list(
            "pk", "original_filename"
        )
    )
    return user, collection.pk, names


# --- one question ------------------------------------------------------------------


def run_question(
    question: Question,
    user: AbstractBaseUser,
    collection_id: int,
    names: dict[int, str],
    *,
    use_model: bool,
) -> Outcome:
    from ragapp.answers.events import CitationAdded, Delta, Finished
    from ragapp.answers.services import ask
    from ragapp.retrieval.search import chunk_search

    outcome = Outcome(question=question)
    passages = chunk_search(
        user=user, query=question.question, collection_ids=[collection_id], limit=10
    )
    for rank, passage in enumerate(passages, start=1):
        if outcome.on_gold(
            names[passage.document_id], passage.page_start, passage.page_end
        ):
            outcome.rank = rank
            break
    started = time.perf_counter()
    text = ""
    cited: dict[int, tuple[str, int | None, int | None]] = {}
    for event in ask(
        user=user,
        question=question.question,
        collection_ids=[collection_id],
        use_model=use_model,
    ):
        if isinstance(event, Delta):
            text += event.text
        elif isinstance(event, CitationAdded):
            cited[event.marker] = (
                names.get(event.document_id, ""),
                event.page_start,
                event.page_end,
            )
        elif isinstance(event, Finished):
            outcome.status = event.status
    outcome.seconds = time.perf_counter() - started
    outcome.answer = text
    outcome.citations = list(cited.values())
    outcome.markers = sorted(cited)
    return outcome


# --- figures -------------------------------------------------------------------------


def figures(outcomes: Iterable[Outcome]) -> dict[str, float | int]:
    outcomes = list(outcomes)
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    citations = sum(len(o.citations) for o in answerable)
    facts = sum(len(o.question.facts) for o in answerable)
    found: dict[str, float | int] = {"questions": len(outcomes)}
    if answerable:
        found |= {
            "hit5": _share(o.rank is not None and o.rank <= 5 for o in answerable),
            "hit10": _share(o.rank is not None for o in answerable),
            "mrr": round(
                statistics.fmean(1 / o.rank if o.rank else 0 for o in answerable), 3
            ),
            "citation_precision": round(
                sum(o.cited_on_gold() for o in answerable) / citations, 3
            )
            if citations
            else 0.0,
            "fact_recall": round(sum(o.facts_found() for o in answerable) / facts, 3)
            if facts
            else 0.0,
            "false_declines": sum(o.declined for o in answerable),
            "answerable": len(answerable),
        }
    if unanswerable:
        found |= {
            "true_declines": sum(o.declined for o in unanswerable),
            "unanswerable": len(unanswerable),
        }
    return found


def _share(flags: Iterable[bool]) -> float:
    flags = list(flags)
    return round(sum(flags) / len(flags), 3) if flags else 0.0


COLUMNS = (
    ("questions", "questions"),
    ("hit5", "hit@5"),
    ("hit10", "hit@10"),
    ("mrr", "MRR"),
    ("citation_precision", "citation precision"),
    ("fact_recall", "fact recall"),
    ("false_declines", "false declines"),
    ("true_declines", "true declines"),
)


def table(rows: list[tuple[str, dict[str, float | int]]]) -> list[str]:
    lines = [
        "| | " + " | ".join(label for _, label in COLUMNS) + " |",
        "| --- |" + " ---: |" * len(COLUMNS),
    ]
    for name, found in rows:
        cells = []
        for key, _ in COLUMNS:
            value = found.get(key, "")
            if key == "false_declines" and "answerable" in found:
                value = f"{value} of {found['answerable']}"
            if key == "true_declines" and "unanswerable" in found:
                value = f"{value} of {found['unanswerable']}"
            cells.append(str(value))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def report(outcomes: list[Outcome], answerer: str, seconds: float) -> str:
    by_split: dict[str, list[Outcome]] = defaultdict(list)
    by_kind: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_split[outcome.question.split].append(outcome)
        by_kind[outcome.question.kind].append(outcome)
    lines = [
        "# Answer quality on the labelled eval-PDF questions",
        "",
        f"Command: `{command_line()}` ({dt.datetime.now(dt.UTC).date().isoformat()}, "
        f"{platform.machine()}, Python {platform.python_version()}); "
        f"answerer: {answerer}; {len(outcomes)} questions in {seconds:.0f} s.",
        "",
        "## By split (results are the `measure` row; `tune` is what was tuned on)",
        "",
        *table([(split, figures(by_split[split])) for split in sorted(by_split)]),
        "",
        "## By kind (both splits)",
        "",
        *table([(kind, figures(by_kind[kind])) for kind in sorted(by_kind)]),
        "",
        "## Misses (answerable questions with a fact or a citation off its gold pages)",
        "",
        "| id | split | kind | gold rank | cited pages | facts found | status |",
        "| --- | --- | --- | ---: | --- | ---: | --- |",
    ]
    for o in outcomes:
        if not o.answerable:
            continue
        off = len(o.citations) - o.cited_on_gold()
        if off or o.facts_found() < len(o.question.facts) or o.declined:
            pages = ", ".join(
                f"{doc.split('.')[0] if doc != o.question.document else ''}"
                f"p{start}{'-' + str(end) if end and end != start else ''}"
                for doc, start, end in o.citations
            )
            lines.append(
                f"| {o.question.id} | {o.question.split} | {o.question.kind} | "
                f"{o.rank or '-'} | {pages or '-'} | "
                f"{o.facts_found()}/{len(o.question.facts)} | {o.status} |"
            )
    wrongly_answered = [o for o in outcomes if not o.answerable and not o.declined]
    if wrongly_answered:
        lines += [
            "",
            "Unanswerable questions answered: "
            + ", ".join(o.question.id for o in wrongly_answered),
        ]
    return "\n".join(lines) + "\n"


STUB_ANSWER = "The passages answer this [1]. A forged source says otherwise [42]."


def mechanics(outcomes: list[Outcome]) -> str:
    """What the stub run proves: markers kept, forged ones dropped, pages mapped."""
    answered = [o for o in outcomes if o.status == "answered"]
    forged_shown = sum("[42]" in o.answer for o in answered)
    kept = sum(o.markers == [1] for o in answered)
    answerable = [o for o in answered if o.answerable]
    rank_one = sum(o.rank == 1 for o in answerable)
    cited_gold = sum(o.cited_on_gold() > 0 for o in answerable)
    return "\n".join(
        [
            "",
            "## Mechanics (the stub cites [1] and forges [42])",
            "",
            f"- answered: {len(answered)} of {len(outcomes)}; the others were "
            "declined before the model by the relevance gate",
            f"- answers citing exactly [1]: {kept} of {len(answered)}",
            f"- answers still showing the forged [42]: {forged_shown}",
            f"- answerable questions whose [1] is on a gold page: {cited_gold}, "
            f"and whose rank-1 passage is: {rank_one} (equal when markers map "
            "to the passages' pages)",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="keep var/bench/qa")
    parser.add_argument(
        "--model",
        action="store_true",
        help="answer with the configured model server instead of offline",
    )
    parser.add_argument(
        "--stub",
        action="store_true",
        help="answer with the hostile model stub: checks the mechanics, not quality",
    )
    parser.add_argument("--split", choices=("tune", "measure", "all"), default="all")
    parser.add_argument("--only", nargs="*", default=[], help="question ids to run")
    parser.add_argument(
        "--questions",
        type=Path,
        default=None,
        help="your own question set (the format of bench/qa/questions.jsonl)",
    )
    parser.add_argument(
        "--documents",
        type=Path,
        default=None,
        help="the folder holding the documents your questions name",
    )
    args = parser.parse_args()

    labelled = load_questions(args.questions) if args.questions else load_questions()
    questions = [
        q
        for q in labelled
        if (args.split == "all" or q.split == args.split)
        and (not args.only or q.id in args.only)
    ]
    with private_stack(DATA_DIR, broker_url="memory://", discard=not args.reuse):
        from django.conf import settings

        from ragapp.celery import app as celery_app

        celery_app.conf.result_backend = "cache+memory://"
        stub = None
        if args.stub:
            from tests.model_stub import ModelStub, Obey

            # A model that cites its first passage and forges a marker no
            # passage has: the loop must keep [1] and drop [42].
            stub = ModelStub().start()
            stub.chat.default = Obey(answer=lambda body: STUB_ANSWER)
            settings.OPENAI_BASE_URL = stub.base_url
            settings.OPENAI_API_KEY = ""
            settings.CHAT_MODEL = "stub-model"
            args.model = True
        elif not args.model:
            settings.OPENAI_API_KEY = ""
            settings.OPENAI_BASE_URL = ""
        answerer = (
            f"model {settings.CHAT_MODEL} at {settings.OPENAI_BASE_URL or 'OpenAI'}"
            if args.model
            else "offline extractive"
        )
        user, collection_id, names = corpus_ready(
            (q.document for q in labelled), args.documents
        )
        started = time.perf_counter()
        outcomes = []
        for question in questions:
            outcomes.append(
                run_question(question, user, collection_id, names, use_model=args.model)
            )
        seconds = time.perf_counter() - started
        if stub is not None:
            stub.stop()
            answerer = "the hostile model stub (mechanics only)"
    text = report(outcomes, answerer, seconds)
    if args.stub:
        text += mechanics(outcomes)
    summary = {
        "answerer": "stub" if args.stub else "model" if args.model else "offline"
    }
    for split in ("tune", "measure"):
        found = figures(o for o in outcomes if o.question.split == split)
        for key in ("hit5", "citation_precision", "fact_recall", "false_declines"):
            if key in found:
                summary[f"{split}_{key}"] = found[key]
        if "true_declines" in found:
            summary[f"{split}_true_declines"] = found["true_declines"]
    name = "qa-stub.md" if args.stub else "qa-model.md" if args.model else "qa.md"
    if args.split != "all" or args.only:
        name = name.replace(".md", "-partial.md")
    report_write(name, text, summary)


if __name__ == "__main__":
    sys.exit(main())
