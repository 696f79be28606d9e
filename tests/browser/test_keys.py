"""A person makes an API key in real chromium, copies it once, and revokes it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from ragapp.api.keys import apikey_authenticate
from ragapp.api.models import ApiKey
from tests.browser.conftest import assert_accessible, screenshot
from tests.factories import CollectionFactory

SECRET = re.compile(r"rag_[A-Za-z0-9_-]{43}")
PHONE = {"width": 390, "height": 844}


def test_a_key_is_shown_once_copied_and_revoked(page, page_log, sign_in, staff_group):
    handbook = CollectionFactory(name="Handbook", slug="handbook")
    handbook.reader_groups.add(staff_group)
    user = sign_in("staff")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])

    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    expect(page.get_by_text("No key yet")).to_be_visible()
    assert_accessible(page)

    page.get_by_label("Name").fill("Laptop script")
    page.get_by_label("Handbook").check()
    page.get_by_label("Expires").select_option("90")
    page.get_by_role("button", name="Create key").click()

    box = page.locator("#new-key")
    expect(box).to_contain_text("it will not be shown again")
    expect(box).to_be_focused()  # htmx honours autofocus in the swapped fragment
    secret = page.locator("#new-key-secret").inner_text()
    assert SECRET.fullmatch(secret), secret
    key = ApiKey.objects.get(user=user)
    assert apikey_authenticate(secret) == key
    row = page.locator(f"#key-{key.pk}")
    expect(row).to_contain_text(f"{key.prefix}…")
    expect(row).to_contain_text("Handbook")
    expect(row).to_contain_text("read-only")
    expect(row).to_contain_text("usable")
    # The page's URL never carried it; the copy button is ui.js's, shown by it.
    assert secret not in page.url
    copy = box.get_by_role("button", name="Copy key")
    # "Copied" shows for two seconds: recorded as it happens, since a busy
    # machine can let a poll miss it.
    copy.evaluate(
        """button => { window.labels = [];
        new MutationObserver(() => window.labels.push(button.textContent))
            .observe(button, {childList: true, characterData: true, subtree: true}); }"""
    )
    copy.click()
    page.wait_for_function("() => window.labels.includes('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    expect(copy).to_have_text("Copy key", timeout=5_000)
    assert_accessible(page)
    screenshot(page, "api-keys-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "api-keys-phone")
    page.set_viewport_size({"width": 1280, "height": 720})

    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)
    assert secret not in page.content()
    assert not SECRET.search(page.content())
    expect(page.locator(f"#key-{key.pk}")).to_contain_text(f"{key.prefix}…")

    page.locator(f"#key-{key.pk}").get_by_role(
        "link", name="Revoke Laptop script…"
    ).click()
    expect(page.get_by_role("heading", name="Revoke “Laptop script”?")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Revoke the key").click()
    expect(page.get_by_text("API key “Laptop script” revoked.")).to_be_visible()
    expect(page.locator(f"#key-{key.pk}")).to_contain_text("revoked")
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert not any(secret in url for url in page_log.requests)
    page_log.assert_clean()


def test_the_page_works_without_javascript(browser, live_app, make_user):
    """A plain form post answers with the secret; nothing needs a script."""
    from tests.browser.conftest import login

    user = make_user("staff")
    context = browser.new_context(base_url=live_app.url, java_script_enabled=False)
    try:
        page = context.new_page()
        login(page, user)
        page.goto("/keys/")
        page.get_by_label("Name").fill("Cron job")
        with page.expect_navigation():
            page.get_by_role("button", name="Create key").click()
        secret = page.locator("#new-key-secret").inner_text()
        assert SECRET.fullmatch(secret), secret
        expect(page.get_by_role("button", name="Copy key")).to_be_hidden()
        page.goto("/keys/")
        assert secret not in page.content()
    finally:
        context.close()
