"""What the benchmarks share: eval data, a private app stack, the report.

Every benchmark runs the app against its own data dir (its own embedded
PostgreSQL), never a developer's, reads the eval data in place beside the
checkout, and ends by writing a Markdown report under docs/bench/ and a last
stdout line of key=value pairs that a script can parse.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DOCS = REPO / "docs" / "bench"


def eval_path(name: str, marker: str) -> Path:
    """Return the eval folder `name` beside the checkout (or under RAGAPP_EVAL_DIR).

    Exits with a message when `marker` (a file inside it) is missing, so a
    checkout without the eval data fails before any set-up.
    """
    base = Path(os.environ.get("RAGAPP_EVAL_DIR") or REPO.parent / "shared" / "eval")
    folder = base / name
    if not (folder / marker).is_file():
        raise SystemExit(f"No {name} eval data at {folder}; set RAGAPP_EVAL_DIR.")
    return folder


def django_setup(data_dir: Path, *, broker_url: str | None = None) -> None:
    """Point the app at `data_dir` (embedded PostgreSQL, bundled Redis) and set up Django.

    DATABASE_URL and REDIS_URL are dropped so nothing outside `data_dir` is
    touched; `broker_url` replaces the Celery broker (e.g. "memory://" for a
    process that runs the pipeline stages itself).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["RAGAPP_DATA_DIR"] = str(data_dir)
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    if broker_url:
        os.environ["CELERY_BROKER_URL"] = broker_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragapp.settings")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()


@contextmanager
def private_stack(
    data_dir: Path, *, broker_url: str | None = None, discard: bool = True
) -> Iterator[None]:
    """Set up Django on `data_dir`, migrate, and stop the server afterwards.

    With `discard`, the server is stopped and `data_dir` removed on the way
    out, whatever happened; without it both are left for the next run.
    """
    django_setup(data_dir, broker_url=broker_url)
    from django.core.management import call_command
    from django.db import connections

    from ragapp.runtime import embedded_postgres

    try:
        call_command("migrate", interactive=False, verbosity=0)
        yield
    finally:
        connections.close_all()
        if discard:
            embedded_postgres.stop(data_dir / "postgres")
            shutil.rmtree(data_dir, ignore_errors=True)


def command_line() -> str:
    """Return the command that started this run, as the reports quote it."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = script.relative_to(REPO)
    except ValueError:
        shown = script
    return " ".join([".venv/bin/python", str(shown), *sys.argv[1:]])


def report_write(name: str, text: str, summary: Mapping[str, object]) -> Path:
    """Write docs/bench/`name`, echo it, and end stdout with the summary line.

    The summary's key=value pairs are the run's result record: the last line
    of stdout, so a script can take it with `tail -1`.
    """
    path = BENCH_DOCS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(text)
    print(" ".join(f"{key}={value}" for key, value in summary.items()), flush=True)
    return path
