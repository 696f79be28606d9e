"""Admins in real chromium: drag a real PDF onto a collection and watch it index."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import assert_accessible
from tests.factories import CollectionFactory
from tests.model_stub import Reply


@pytest.fixture
def collection(staff_group):
    collection = CollectionFactory(name="Papers", slug="papers")
    collection.reader_groups.add(staff_group)
    return collection


def drop_file(page, selector: str, path: Path) -> None:
    """Drop `path` on `selector` as a person dragging it from their desktop would."""
    data = path.read_bytes()
    handle = page.evaluate_handle(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "application/pdf"}));
            return transfer;
        }""",
        [path.name, list(data)],
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": handle})
    page.dispatch_event(selector, "drop", {"dataTransfer": handle})


def test_an_admin_drops_a_real_pdf_and_watches_it_reach_ready(
    page, page_log, sign_in, collection, eval_pdfs, model_stub_server
):
    sign_in("admin")
    page.goto(f"/manage/collections/{collection.pk}/")
    assert_accessible(page)
    drop_file(page, "[data-dropzone]", eval_pdfs / "hf_transformers.pdf")
    row = page.locator("#upload-progress tr").first
    expect(row).to_contain_text("hf_transformers.pdf", timeout=30_000)
    # The row keeps itself live: queued → parsing → embedding n/m → ready.
    expect(page.locator("#upload-progress .status").first).to_contain_text(
        "Ready", timeout=240_000
    )
    expect(page.locator("#documents")).to_contain_text("Ready", timeout=30_000)
    page.locator("#documents tbody a").first.click()
    expect(page.locator("h2").first).to_contain_text("Page 1")
    assert_accessible(page)

    # Staff ask about it; the citation shows the cited page, drawn.
    model_stub_server.reset()
    model_stub_server.chat.push(
        Reply("Transformers is a library of models [1].", chunk_size=8)
    )
    page.goto("/ask/")
    page.fill("#question", "What does the Transformers library provide?")
    page.click("#ask-form button[type=submit]")
    turn = page.locator(".turn").last
    expect(turn.locator(".answer.live")).to_have_count(0, timeout=30_000)
    turn.locator("a.cite").first.click()
    panel = page.locator("#source-panel")
    quote = panel.locator(".quote").inner_text()
    image = panel.locator(".page-image img").first
    expect(image).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth >= 1000", arg=image.element_handle()
    )
    caption = panel.locator(".page-image figcaption").first.inner_text()
    shown = caption.split()[-1]  # the image is of a page the citation names
    assert shown in panel.locator(".meta").inner_text()
    assert quote.strip()
    opener = panel.get_by_role("link", name=re.compile("Open the PDF at page"))
    assert re.search(r"/documents/\d+/file#page=\d+$", opener.get_attribute("href"))
    page_log.assert_clean()


def test_manage_and_usage_pages_pass_axe(page, page_log, sign_in, collection):
    sign_in("admin")
    for url in (
        "/manage/",
        f"/manage/collections/{collection.pk}/edit",
        f"/manage/collections/{collection.pk}/delete",
        f"/manage/collections/{collection.pk}/search/?q=transformers",
        "/usage/",
        "/manage/users/",
        "/threads/",
        "/ask/",
    ):
        page.goto(url)
        assert_accessible(page)
    page_log.assert_clean()


def test_staff_cannot_open_the_manage_pages(page, sign_in, collection):
    sign_in()
    response = page.goto("/manage/")
    assert response.status == 403
