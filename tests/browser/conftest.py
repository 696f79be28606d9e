"""Real-browser fixtures: the real app under uvicorn, Debian's chromium, axe.

`live_app` serves ragapp as `make run` does (uvicorn on the ASGI app, DEBUG
off, plain HTTP on loopback, collected static files through WhiteNoise), on the
session's test database, the test Redis and the session's test queue, with the
real Celery worker running; it shares that worker's data dir, so a file
uploaded through the browser is where the worker looks for it.

Browser tests are transactional. The server is another process and sees only
committed rows, so `page` requests `transactional_db`: what a test makes with
the factories (tests/factories.py) is committed, and the database is flushed
after the test. A browser test needs no `django_db` marker (`page` makes it
transactional, whatever a marker says). The flush also empties the role groups the migrations made,
so `staff_group` and `admin_group` here make them again when they are missing.

`page` is a new context and tab per test on the live app's origin
(`page.goto("/ask/")` works), recording console messages, uncaught errors and
every request in `page_log`. A request to any other origin fails the test at
teardown: XSS tests rely on it to see a payload phone home, and on `pwned(page)`
to see one that ran in place (`window.__pwned` set, or `alert()` called).

Set RAGAPP_TEST_SCREENSHOTS to a directory to keep `screenshot()`s and a
picture of the page of every failed browser test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group, Permission
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

from ragapp.accounts.roles import ADMIN_PERMISSIONS, ADMINS_GROUP, STAFF_GROUP
from tests.conftest import REPO_ROOT, TEST_REDIS_URL, Worker, _stop_process_group
from tests.factories import TEST_PASSWORD, UserFactory
from tests.model_stub import ModelStub

CHROMIUM = Path("/usr/bin/chromium")
# The machine's network is closed: without these, chromium's own background
# traffic (QUIC probes, component updates, sync) shows up as refused
# connections in its log and as noise next to the pages' requests.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Playwright waits this long for a selector or a navigation: the app answers
# in milliseconds on loopback, and a test stuck on a missing element should
# say so long before pytest-timeout's 300 s.
DEFAULT_TIMEOUT_MS = 10_000
SERVER_START_SECONDS = 90
# URL schemes that never reach the network, so are never off-host.
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})
# Chromium asks for /favicon.ico by itself, once per browser rather than per
# page, so which test would see its 404 depends on the order they run in;
# test_sign_in checks the icon once, deterministically.
AUTOMATIC_REQUESTS = frozenset({"/favicon.ico"})
# XSS payloads prove themselves either way; app code never calls alert().
PWNED_TRAP = """
window.alert = (message) => {
  window.__pwned = window.__pwned || `alert(${String(message)})`;
};
"""
SCREENSHOTS_ENV = "RAGAPP_TEST_SCREENSHOTS"

Role = Literal["staff", "admin", "superuser"]


# --- The app, served for real -----------------------------------------------------


@dataclass(frozen=True)
class LiveApp:
    """Where the live server listens and what it writes."""

    host: str
    port: int
    data_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def media_root(self) -> Path:
        return self.data_dir / "media"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _server_env(worker: Worker, static_root: Path, model_url: str) -> dict[str, str]:
    """Return the worker's environment made into a plain-HTTP loopback server's.

    The worker's already names the test database, the test queue and the data
    dir. SECRET_KEY is this process's, so sessions and tokens a test makes
    here are valid there. The chat model is the session's hostile model stub
    on loopback (`model_url`, scripted per test); with a base URL and no key,
    moderation and embeddings stay local, and nothing leaves the machine. DJANGO_ALLOW_ASYNC_UNSAFE stays out: the
    server must keep Django's guard even though this process lifts it.
    """
    dropped = {
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "RAGAPP_CSRF_TRUSTED_ORIGINS",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    }
    env = {k: v for k, v in worker.env.items() if k not in dropped}
    env.update(
        {
            "REDIS_URL": TEST_REDIS_URL,
            "CELERY_BROKER_URL": TEST_REDIS_URL,
            "RAGAPP_CELERY_QUEUE": worker.queue,
            "RAGAPP_DATA_DIR": str(worker.data_dir),
            "SECRET_KEY": settings.SECRET_KEY,
            # `make run`'s security settings: plain HTTP on loopback, so no
            # Secure cookies, HSTS or HTTPS redirect (RAGAPP_HTTPS=true is
            # the production switch, checked by tests/runtime/test_security.py).
            "RAGAPP_HTTPS": "false",
            "RAGAPP_DEBUG": "false",
            "RAGAPP_ALLOWED_HOSTS": "127.0.0.1",
            # Collected by the session's `collected_static`, as `manage.py
            # serve` runs collectstatic before starting uvicorn.
            "RAGAPP_STATIC_ROOT": str(static_root),
            "OPENAI_BASE_URL": model_url,
            # Answers' event streams under this run's prefix (tests/conftest.py).
            "RAGAPP_ANSWER_EVENTS_PREFIX": settings.ANSWER_EVENTS_PREFIX,
            "RAGAPP_CHAT_MODEL": "stub-model",
            "RAGAPP_MODEL_TIMEOUT_SECONDS": "5",
        }
    )
    return env


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def live_app(
    celery_worker: Worker, collected_static: Path, model_stub_server: ModelStub
) -> Iterator[LiveApp]:
    """Serve the real app in a uvicorn subprocess until the session ends."""
    host = "127.0.0.1"
    app = LiveApp(
        host=host,
        port=_free_port(host),
        data_dir=celery_worker.data_dir,
        log_path=celery_worker.data_dir / "web.log",
    )
    command = [
        sys.executable, "-m", "uvicorn", "ragapp.asgi:application",
        "--host", host, "--port", str(app.port),
        "--no-server-header", "--lifespan", "off", "--timeout-graceful-shutdown", "5",
    ]  # fmt: skip
    with app.log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=_server_env(
                celery_worker, collected_static, model_stub_server.base_url
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _healthy(app.url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"The live server did not answer {app.url}/healthz:\n{app.log()}"
                )
            time.sleep(0.25)
        yield app
    finally:
        _stop_process_group(process)


# --- Roles, made again after each flush ---------------------------------------------


@pytest.fixture
def staff_group(transactional_db) -> Group:
    """The default reader group, as migration 0001 makes it."""
    return Group.objects.get_or_create(name=STAFF_GROUP)[0]


@pytest.fixture
def admin_group(transactional_db) -> Group:
    """The Admins group with the permissions ragapp.accounts.roles lists."""
    group, _ = Group.objects.get_or_create(name=ADMINS_GROUP)
    for dotted in ADMIN_PERMISSIONS:
        app_label, codename = dotted.split(".")
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return group


@pytest.fixture
def make_user(
    staff_group: Group, admin_group: Group
) -> Callable[..., AbstractBaseUser]:
    """Return a factory of users in a role, all with TEST_PASSWORD.

    "staff" reads the collections shared with the Staff group; "admin" also
    manages collections and uses the Django admin; "superuser" is what
    `make run` creates first.
    """

    def make(role: Role = "staff", **fields: object) -> AbstractBaseUser:
        if role != "staff":
            fields.setdefault("is_staff", True)
        if role == "superuser":
            fields.setdefault("is_superuser", True)
        user = UserFactory(**fields)
        user.groups.add(staff_group)
        if role != "staff":
            user.groups.add(admin_group)
        return user

    return make


# --- The browser ----------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright while tests/browser runs.

    Package scope, not session: Playwright's sync API keeps an asyncio loop
    running in this thread from start to stop, and while it runs
    `asyncio.run()` and asgiref's `async_to_sync` (which Django's test client
    uses on async streaming responses) refuse to work. Stopped after the last
    browser test, it cannot break the tests that come after.
    """
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/ensure-chromium (make test does)"
        )
    # The same running loop makes Django refuse the tests' ORM calls as made
    # "from an async context", though they are ordinary synchronous calls
    # (the loop only drives the browser). Lifted only while the browser
    # exists, and never for the live server (see _server_env).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class ConsoleEntry(NamedTuple):
    type: str
    text: str
    url: str


@dataclass
class PageLog:
    """What a test's page did: console, uncaught errors, every request URL."""

    page: Page
    origin: str
    console: list[ConsoleEntry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[ConsoleEntry]:
        """Return the errors, less the browser's own requests' (AUTOMATIC_REQUESTS)."""
        return [
            entry
            for entry in self.console
            if entry.type == "error"
            and urlsplit(entry.url).path not in AUTOMATIC_REQUESTS
        ]

    @property
    def off_host(self) -> list[str]:
        """Return the requests that went anywhere but the live app."""
        return [url for url in self.requests if not _on_host(url, self.origin)]

    def assert_clean(self) -> None:
        """Fail on console errors, uncaught errors, off-host requests, a payload.

        Console errors include CSP refusals, so an inline script or style the
        policy blocks fails here even when the page still looks right.
        """
        problems = {
            "console errors": [f"{e.text} ({e.url})" for e in self.console_errors],
            "uncaught errors": self.errors,
            "off-host requests": self.off_host,
            "window.__pwned": [value] if (value := pwned(self.page)) else [],
        }
        found = {what: items for what, items in problems.items() if items}
        assert not found, f"the page was not clean: {found}"


def _on_host(url: str, origin: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in {"http", "ws"} and parts.netloc == urlsplit(origin).netloc


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the test, for `page` to see a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def _browser_page(
    request: pytest.FixtureRequest,
    browser: Browser,
    live_app: LiveApp,
    transactional_db,
) -> Iterator[PageLog]:
    context = browser.new_context(base_url=live_app.url)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.add_init_script(PWNED_TRAP)
    page = context.new_page()
    log = PageLog(page=page, origin=live_app.url)

    def on_console(message: ConsoleMessage) -> None:
        log.console.append(
            ConsoleEntry(message.type, message.text, message.location.get("url", ""))
        )

    context.on("request", lambda req: log.requests.append(req.url))
    page.on("console", on_console)
    page.on(
        "pageerror", lambda error: log.errors.append(f"{error.name}: {error.message}")
    )
    try:
        yield log
        failed = getattr(request.node, "report_call", None)
        if failed is not None and failed.failed:
            screenshot(page, f"failed-{request.node.name}")
    finally:
        context.close()
    if log.off_host:
        pytest.fail(f"requests left the live app: {log.off_host}", pytrace=False)


@pytest.fixture
def page(_browser_page: PageLog) -> Page:
    """A new tab, in a context of its own, on the live app (transactional DB)."""
    return _browser_page.page


@pytest.fixture
def page_log(_browser_page: PageLog) -> PageLog:
    """What `page` logged: console messages, page errors, request URLs."""
    return _browser_page


# --- Signing in ------------------------------------------------------------------------


def login(
    page: Page, user: AbstractBaseUser | str, password: str = TEST_PASSWORD
) -> None:
    """Sign in through the real form at /accounts/login/ (any outcome)."""
    username = user if isinstance(user, str) else user.get_username()
    page.goto("/accounts/login/")
    form = page.locator("form:has(input[name=password])")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        form.locator("[type=submit]").click()


@pytest.fixture
def sign_in(
    page: Page, make_user: Callable[..., AbstractBaseUser]
) -> Callable[..., AbstractBaseUser]:
    """Return `sign_in(role="staff", **fields)`: make a user, sign `page` in as them.

    The user is made with the factories (committed, so the server sees it)
    and signs in through the login form, never a forged session cookie.
    """

    def sign_in_as(role: Role = "staff", **fields: object) -> AbstractBaseUser:
        user = make_user(role, **fields)
        login(page, user)
        if urlsplit(page.url).path.startswith("/accounts/login/"):
            pytest.fail(f"{user.get_username()} could not sign in: {page.content()}")
        return user

    return sign_in_as


# --- Checks ----------------------------------------------------------------------------


def pwned(page: Page) -> object:
    """Return `window.__pwned` (set by a payload or by alert()), None if unset."""
    return page.evaluate("() => window.__pwned ?? null")


_AXE = Axe()
FAILING_IMPACTS = ("serious", "critical")


def assert_accessible(page: Page, *, context: str | None = None) -> None:
    """Run axe-core on the page as it is; fail on every serious or critical violation.

    Minor and moderate findings are not failures (they are often matters of
    taste, such as landmark nesting); they are still in axe's full report.
    """
    results = _AXE.run(page, context=context)
    failures = [
        violation
        for violation in results.response["violations"]
        if violation.get("impact") in FAILING_IMPACTS
    ]
    lines = [
        f"{v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>\n"
        + "\n".join(f"    {', '.join(map(str, node['target']))}" for node in v["nodes"])
        for v in failures
    ]
    assert not failures, f"axe found on {page.url}:\n" + "\n".join(lines)


def screenshot(page: Page, name: str) -> Path | None:
    """Save a full-page PNG under $RAGAPP_TEST_SCREENSHOTS, if it is set."""
    directory = os.environ.get(SCREENSHOTS_ENV)
    if not directory:
        return None
    path = Path(directory) / (re.sub(r"[^\w.-]+", "-", name) + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=path, full_page=True)
    except Error:
        return None  # the page is gone (closed or crashed): nothing to show
    return path
