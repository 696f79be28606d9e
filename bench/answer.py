"""Answer latency: what ragapp adds before the first token, and the offline answerer's pace.

The model is the hostile model stub (tests/model_stub.py) on loopback, set to
stream a fixed answer at a fixed rate, so the figures are ragapp's own cost:
moderation of the question, retrieval, the prompt, the provider and the
citation filter. Each round times, back to back, the stub alone (the official
SDK straight to it, first content chunk) and a whole `ask()` (first Delta
event); the added latency of a round is the difference. Rounds alternate, so
drift on a noisy machine hits both sides alike.

The offline default (no model configured: the extractive answerer) is timed
on the same documents: time to first token and tokens per second, counted in
cl100k tokens of the streamed text.

Everything runs in a temporary data dir with its own embedded PostgreSQL; the
documents (five short policy notes written here) go through the real
ingestion code.

    .venv/bin/python bench/answer.py [--rounds 100]

Writes docs/bench/answer.md; the last stdout line is key=value pairs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from _common import REPO, command_line, private_stack, report_write

sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from tests.model_stub import ModelStub

DOCUMENTS = {
    "travel.md": "# Travel\n\nStaff book trains through the travel desk. Economy "
    "class is the rule under four hours; first class needs a director's approval.",
    "expenses.md": "# Expenses\n\nMeal expenses are refunded up to 35 euros a day "
    "with receipts. Claims are filed within 30 days through the expenses form.",
    "security.md": "# Security\n\nLaptops are locked with a cable in hotels. A lost "
    "laptop is reported to the service desk within one hour.",
    "leave.md": "# Leave\n\nStaff have 27 days of paid leave a year. Up to five "
    "unused days carry over to the next year with a manager's approval.",
    "remote.md": "# Remote work\n\nStaff may work from home up to three days a week. "
    "The office is open from 7 to 20 on weekdays.",
}
QUESTIONS = (
    "How much are meal expenses refunded per day?",
    "Which class do staff travel in on trains?",
    "What do I do when I lose my laptop?",
    "How many days of paid leave do staff get?",
    "How many days a week can I work from home?",
)
ANSWER = (
    "Meal expenses are refunded up to 35 euros a day with receipts [1]. Claims "
    "are filed within 30 days through the expenses form [1]."
)
CHUNK_CHARS = 4
CHUNK_DELAY = 0.01  # 100 chunks a second: a brisk model
FIRST_DELAY = 0.05  # the stub's own time to first token


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def build_corpus() -> AbstractBaseUser:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from ragapp.documents import ingestion, services
    from ragapp.documents.models import Collection

    group = Group.objects.create(name="Bench readers")
    user = get_user_model().objects.create_user(username="bench")
    user.groups.add(group)
    collection = Collection.objects.create(name="Policies", slug="policies")
    collection.reader_groups.add(group)
    for name, text in DOCUMENTS.items():
        outcome = services.document_upload(
            collection=collection, stream=io.BytesIO(text.encode()), filename=name
        )
        ingestion.document_ingest(document_id=outcome.document.pk)
    return user


def time_direct(stub: ModelStub, model: str) -> float:
    """Seconds from request to the first content chunk, the SDK straight to the stub."""
    import openai

    client = openai.OpenAI(base_url=stub.base_url, api_key="bench", max_retries=0)
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
    )
    with stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - started
                break
        for _chunk in stream:
            pass
    return first


def time_ask(user: AbstractBaseUser, question: str) -> tuple[float, float, str]:
    """(seconds to first Delta, seconds to the end, streamed text) of one ask()."""
    from ragapp.answers.events import Delta
    from ragapp.answers.services import ask

    started = time.perf_counter()
    first = None
    text = ""
    for event in ask(user=user, question=question):
        if isinstance(event, Delta):
            if first is None:
                first = time.perf_counter() - started
            text += event.text
    return first or float("nan"), time.perf_counter() - started, text


GATE_WINDOWS = (20, 40, 80)


def gate_delay(user: AbstractBaseUser, question: str) -> float:
    """Milliseconds between the model's first token and the first released one."""
    from ragapp.answers.models import Message

    time_ask(user, question)
    message = Message.objects.order_by("-pk").first()
    return message.first_token_ms - message.retrieval_trace["model_first_token_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="ragapp-bench-answer-"))
    with private_stack(data_dir, broker_url="memory://"):
        from django.conf import settings

        from ragapp.celery import app as celery_app
        from ragapp.documents.tokens import count_tokens
        from tests.model_stub import ModelStub, Reply

        # Uploads go to no broker: this process indexes them itself.
        celery_app.conf.result_backend = "cache+memory://"
        user = build_corpus()

        # --- offline default: the extractive answerer ---------------------------
        settings.OPENAI_API_KEY = ""
        settings.OPENAI_BASE_URL = ""
        offline_ttft, offline_rate = [], []
        time_ask(user, QUESTIONS[0])  # load the embedder once, outside the figures
        for round_ in range(max(10, args.rounds // 4)):
            first, total, text = time_ask(user, QUESTIONS[round_ % len(QUESTIONS)])
            offline_ttft.append(first * 1000)
            if total > first:
                offline_rate.append(count_tokens(text) / (total - first))

        # --- a model on loopback: what ragapp adds before its first token ----------
        stub = ModelStub().start()
        stub.chat.default = Reply(
            ANSWER, chunk_size=CHUNK_CHARS, delay=CHUNK_DELAY, first_delay=FIRST_DELAY
        )
        # A LAN model server without a key: chat goes to it, moderation stays local
        # (the default for OPENAI_BASE_URL alone).
        settings.OPENAI_BASE_URL = stub.base_url
        settings.OPENAI_API_KEY = ""
        settings.CHAT_MODEL = "bench-model"
        direct, through, added = [], [], []
        try:
            time_ask(user, QUESTIONS[0])
            time_direct(stub, "bench-model")
            for round_ in range(args.rounds):
                d = time_direct(stub, "bench-model") * 1000
                a = time_ask(user, QUESTIONS[round_ % len(QUESTIONS)])[0] * 1000
                direct.append(d)
                through.append(a)
                added.append(a - d)
            # What the moderation gate adds: no text is released before the
            # window holding it was screened, so the first token waits for
            # the first window. Measured per message from the loop's own
            # clock: the model's first token to the first released one.
            gate: dict[int, list[float]] = {}
            for window in GATE_WINDOWS:
                settings.MODERATION_FIRST_WINDOW_CHARS = window
                for round_ in range(max(10, args.rounds // 4)):
                    gate.setdefault(window, []).append(
                        gate_delay(user, QUESTIONS[round_ % len(QUESTIONS)])
                    )
        finally:
            stub.stop()

    default_window = 40
    figures = {
        "gate_p50_ms": round(percentile(gate[default_window], 50), 1),
        "added_ttft_p50_ms": round(percentile(added, 50), 1),
        "added_ttft_p95_ms": round(percentile(added, 95), 1),
        "offline_ttft_ms": round(statistics.median(offline_ttft), 1),
    }
    load = os.getloadavg()[0]
    table = "\n".join(
        [
            "| | p50 | p95 |",
            "| --- | ---: | ---: |",
            f"| stub alone, first token (ms) | {percentile(direct, 50):.1f} | {percentile(direct, 95):.1f} |",
            f"| through ragapp, first token (ms) | {percentile(through, 50):.1f} | {percentile(through, 95):.1f} |",
            f"| **added by ragapp (ms)** | **{percentile(added, 50):.1f}** | **{percentile(added, 95):.1f}** |",
            f"| offline extractive, first token (ms) | {percentile(offline_ttft, 50):.1f} | {percentile(offline_ttft, 95):.1f} |",
            f"| offline extractive, tokens/s | {statistics.median(offline_rate):.0f} | |",
        ]
    )
    gate_table = "\n".join(
        [
            "| first moderation window (characters) | gate p50 (ms) | gate p95 (ms) |",
            "| ---: | ---: | ---: |",
            *(
                f"| {w}{' (default)' if w == default_window else ''} | "
                f"{percentile(gate[w], 50):.1f} | {percentile(gate[w], 95):.1f} |"
                for w in GATE_WINDOWS
            ),
        ]
    )
    text = f"""# Answer latency

Command: `{command_line()}` ({dt.datetime.now(dt.UTC).date().isoformat()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load:.1f} at the end).

The stub streams {len(ANSWER)} characters in pieces of {CHUNK_CHARS} every {CHUNK_DELAY * 1000:.0f} ms after {FIRST_DELAY * 1000:.0f} ms; {args.rounds} rounds alternate the stub alone and a whole `ask()` (question moderated offline, hybrid retrieval over {len(DOCUMENTS)} documents, prompt, provider, citation filter). Added = through ragapp minus stub alone, per round.

{table}

Target: added p95 ≤ 50 ms.

## What the moderation gate adds to the first token

No answer text reaches a client before the moderation window holding it has
passed (`RAGAPP_MODERATION_FIRST_WINDOW_CHARS`, then
`RAGAPP_MODERATION_STREAM_CHARS`; a window that waited
`RAGAPP_MODERATION_MAX_WAIT_SECONDS` is screened early). The gate's delay is
measured per answer, from the model's first token to the first released
one, with the stub streaming {1000 * CHUNK_CHARS / (CHUNK_DELAY * 1000):.0f} characters a second and
the offline moderation screen ({max(10, args.rounds // 4)} answers per row). The "added by ragapp" row
above includes it.

{gate_table}

Most of the delay is waiting for the window to fill at the model's pace (a
slower model waits longer, up to the max wait of 0.6 s); screening a window
offline takes a few milliseconds.
"""
    report_write("answer.md", text, figures)


if __name__ == "__main__":
    main()
