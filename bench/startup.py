"""Time `make run` the way a newcomer meets it: a fresh clone, then a restart.

Clones the repository (HEAD) into a temporary directory, runs `make run` there
and times how long until the login page answers (the first run includes
creating .venv and installing every dependency, initdb and migrations), stops it
with SIGINT as Ctrl-C does, then times a second `make run` on the same clone.
Optionally also times `make test` on the clone.

    .venv/bin/python bench/startup.py [--with-test]

pip's download cache (~/.cache/pip) is left as it is; say so when quoting the
first-run figure. Writes docs/bench/startup.md; the last line is key=value.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "bench" / "startup.md"
FIRST_RUN_LIMIT = 600.0


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def login_page_answers(port: int) -> bool:
    """Return whether the login page answers 200."""
    url = f"http://127.0.0.1:{port}/accounts/login/"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def timed_make_run(clone: Path, port: int, log: Path) -> float:
    """Start `make run`, return seconds until the login page answers, then stop it."""
    env = {**os.environ, "RAGAPP_PORT": str(port)}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "RAGAPP_DATA_DIR"):
        env.pop(name, None)
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while not login_page_answers(port):
                if process.poll() is not None:
                    raise SystemExit(f"make run exited early; see {log}")
                if time.monotonic() - started > FIRST_RUN_LIMIT:
                    raise SystemExit(f"make run not serving after {FIRST_RUN_LIMIT} s")
                time.sleep(0.2)
            elapsed = time.monotonic() - started
        finally:
            # Ctrl-C in a terminal signals the whole foreground group.
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return elapsed


def timed_make_test(clone: Path, log: Path) -> tuple[float, int]:
    """Run `make test`; return seconds and exit code."""
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.call(
            ["make", "test"], cwd=clone, stdout=out, stderr=subprocess.STDOUT
        )
    return time.monotonic() - started, code


def main() -> None:
    """Measure, print, and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-test", action="store_true", help="also time make test")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ragapp-startup-"))
    clone = workdir / "ragapp"
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=clone,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        first = timed_make_run(clone, free_port(), workdir / "run1.log")
        second = timed_make_run(clone, free_port(), workdir / "run2.log")
        test_seconds, test_code = (None, None)
        if args.with_test:
            test_seconds, test_code = timed_make_test(clone, workdir / "test.log")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = [
        ("first `make run` (fresh clone: venv, install, initdb, migrate) until the login page answers", f"{first:.1f} s"),
        ("second `make run` until the login page answers", f"{second:.1f} s"),
    ]  # fmt: skip
    if test_seconds is not None:
        rows.append(
            (
                f"`make test` on the same clone (exit {test_code})",
                f"{test_seconds:.1f} s",
            )
        )
    table = "\n".join(f"| {what} | {value} |" for what, value in rows)
    report = (
        "# Start-up times\n\n"
        f"Command: `.venv/bin/python bench/startup.py{' --with-test' if args.with_test else ''}`"
        f" (commit {commit}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}). pip's download "
        "cache was warm if this machine had installed the packages before.\n\n"
        "| what | time |\n| --- | --- |\n"
        f"{table}\n"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(report)
    print(report)
    line = f"first_run_s={first:.1f} second_run_s={second:.1f}"
    if test_seconds is not None:
        line += f" make_test_s={test_seconds:.1f} make_test_exit={test_code}"
    print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
