"""Take the README's screenshots again, from a fresh `manage.py serve`.

    .venv/bin/python scripts/screenshots.py [--pdf ../shared/eval/pdfs/cidr2021_paper17.pdf]
    .venv/bin/python scripts/screenshots.py --pdf ../shared/eval/pdfs/NIST.SP.800-61r2.pdf \
        --question "..." --ask-only ask-table

Starts ragapp on a temporary data dir (embedded database, broker, workers,
demo data) exactly as `make run` does, loads one real PDF into the demo
collection, and drives Debian's chromium (/usr/bin/chromium) with
Playwright as an admin: asks a question and opens its first citation, the
upload page with files on their way, the usage page, a new API key
on the keys page, and the native API's docs. The PNGs go to
docs/screenshots/. Nothing is mocked: what you see is what `make run` serves.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "screenshots"
DEFAULT_PDF = REPO.parent / "shared" / "eval" / "pdfs" / "cidr2021_paper17.pdf"
QUESTION = "What is a lakehouse?"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    """Start `manage.py serve`; return it and the admin password it printed."""
    env = {**os.environ, "RAGAPP_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    password = ""
    running = False
    deadline = time.monotonic() + 300
    for line in process.stdout:
        running = running or "ragapp is running" in line
        if match := re.search(r"^\s+password: (\S+)", line):
            password = match.group(1)
        if running and (password or "existing account" in line):
            break
        if time.monotonic() > deadline:
            raise SystemExit("ragapp did not start within 5 minutes")
    # Keep reading its output so the pipe never fills.
    subprocess.Popen(["cat"], stdin=process.stdout, stdout=subprocess.DEVNULL)
    return process, password


def ingest(data_dir: Path, pdf: Path) -> None:
    env = {**os.environ, "RAGAPP_DATA_DIR": str(data_dir)}
    subprocess.run(
        [sys.executable, "manage.py", "ingest", "ragapp-docs", str(pdf), "--now"],
        cwd=REPO,
        env=env,
        check=True,
    )


def shoot(page: Page, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"wrote {OUT / name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdf", type=Path, default=DEFAULT_PDF)
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument(
        "--ask-only",
        metavar="NAME",
        help="only the ask page with its first citation, to docs/screenshots/NAME.png",
    )
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ragapp-shots-"))
    port = free_port()
    process, password = start(data_dir, port)
    base = f"http://127.0.0.1:{port}"
    try:
        ingest(data_dir, args.pdf)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{base}/accounts/login/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", password)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            # Wait until every document is indexed: the list stops polling.
            page.goto(f"{base}/manage/")
            page.locator("table.data tbody a").first.click()
            collection_url = page.url
            page.wait_for_function(
                "() => !document.querySelector('#documents[hx-trigger]')",
                timeout=300_000,
            )

            page.goto(f"{base}/ask/")
            page.fill("#question", args.question)
            page.click("#ask-form button[type=submit]")
            turn = page.locator(".turn").last
            expect(turn.locator(".answer.live")).to_have_count(0, timeout=60_000)
            turn.locator("a.cite").first.click()
            panel = page.locator("#source-panel")
            expect(panel.locator("h2")).to_be_visible()
            image = panel.locator(".page-image img").first
            if image.count():
                image.scroll_into_view_if_needed()
                page.wait_for_function(
                    "img => img.complete && img.naturalWidth > 0",
                    arg=image.element_handle(),
                    timeout=30_000,
                )
            page.evaluate("window.scrollTo(0, 0)")
            shoot(page, args.ask_only or "ask-citation")
            if args.ask_only:
                return

            page.goto(collection_url)
            files = page.locator("#upload-files")
            files.set_input_files(
                [
                    str(args.pdf.parent / n)
                    for n in ("hf_transformers.pdf", "i1040gi.pdf")
                ]
            )
            page.locator("#upload-form [type=submit]").click()
            page.wait_for_timeout(2500)  # bars filled, documents queued or parsing
            shoot(page, "upload")

            page.goto(f"{base}/usage/")
            shoot(page, "usage")

            page.goto(f"{base}/keys/")
            page.fill("#id_name", "Reporting script")
            page.locator(".key-form [type=submit]").click()
            expect(page.locator("#new-key-secret")).to_be_visible()
            shoot(page, "api-keys")

            page.goto(f"{base}/api/docs")
            expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
            shoot(page, "api-docs")
            browser.close()
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)


if __name__ == "__main__":
    main()
