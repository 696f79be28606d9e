"""T16: when the moderation service is down, slow or unreadable, fail closed.

With RAGAPP_MODERATION_REQUIRED every failure ends, within the configured
timeout + 1 s, in ModerationUnavailableError carrying a message for the
person, after an "unavailable" check is recorded; no check passes as "ok".
Without it, the unavailable check is recorded and the text goes through.

The bound on time is the acceptance criterion of T16 itself, so it is
asserted here, once per failure, at its stated generous limit.
"""

from __future__ import annotations

import time

import httpx
import pytest

from ragapp.moderation.exceptions import ModerationUnavailableError
from ragapp.moderation.models import ModerationCheck
from ragapp.moderation.services import screen
from ragapp.providers.base import MODERATION_CATEGORIES
from tests.model_stub import Moderation, Raw, StallHeaders, Status
from tests.moderation.wire import server_error

pytestmark = pytest.mark.django_db

TIMEOUT = 1.5
UNAVAILABLE = "content check is unavailable right now"

FAILURES = {
    "timeout": httpx.ReadTimeout("read timed out"),
    "connection refused": httpx.ConnectError("connection refused"),
    "5xx": server_error(503),
    "malformed json": httpx.Response(
        200,
        content=b'{"id": "modr-1", "results": [{"flag',
        headers={"content-type": "application/json"},
    ),
    "wrong shape": httpx.Response(200, json={"id": "modr-1", "object": "list"}),
    "html error page": httpx.Response(
        200, content=b"<html>Bad gateway</html>", headers={"content-type": "text/html"}
    ),
}


def require_openai_moderation(settings) -> None:
    """Moderation through the OpenAI format, required, with the test's timeout."""
    settings.MODERATION_PROVIDER = "openai"
    settings.MODERATION_REQUIRED = True
    settings.MODERATION_TIMEOUT_SECONDS = TIMEOUT
    settings.MODERATION_THRESHOLDS = {}
    settings.MODERATION_CATEGORIES = MODERATION_CATEGORIES


@pytest.fixture
def moderation_api(openai_http, settings):
    require_openai_moderation(settings)
    return openai_http


def screen_timed(text: str, source: str = "question"):
    started = time.monotonic()
    try:
        return screen(text, user=None, source=source), time.monotonic() - started
    except ModerationUnavailableError as exc:
        return exc, time.monotonic() - started


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_required_moderation_fails_closed_with_a_clear_message(moderation_api, failure):
    route = moderation_api.post("/moderations").mock(side_effect=failure)
    outcome, elapsed = screen_timed("What is the leave policy?")

    assert isinstance(outcome, ModerationUnavailableError)
    assert UNAVAILABLE in outcome.message
    assert "Try again in a minute" in outcome.message
    assert outcome.code == "moderation_unavailable"
    assert elapsed < TIMEOUT + 1
    assert route.call_count >= 1

    check = ModerationCheck.objects.get()
    assert outcome.check == check
    assert check.status == "unavailable"
    assert not check.flagged
    assert check.error
    assert check.provider == "openai"
    assert not ModerationCheck.objects.filter(status="ok").exists()


def test_an_answer_is_withheld_with_its_own_message(moderation_api):
    moderation_api.post("/moderations").mock(side_effect=server_error(500))
    with pytest.raises(ModerationUnavailableError, match="the answer was withheld"):
        screen("The policy says...", user=None, source="answer")


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_optional_moderation_records_unavailable_and_lets_the_text_through(
    moderation_api, settings, failure
):
    settings.MODERATION_REQUIRED = False
    moderation_api.post("/moderations").mock(side_effect=failure)
    outcome, elapsed = screen_timed("What is the leave policy?")

    assert isinstance(outcome, ModerationCheck)
    assert outcome.status == "unavailable"
    assert not outcome.flagged
    assert outcome.error
    assert elapsed < TIMEOUT + 1
    assert ModerationCheck.objects.get() == outcome


def test_misconfigured_provider_fails_closed_too(settings):
    settings.MODERATION_PROVIDER = "openai"
    settings.MODERATION_REQUIRED = True
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    with pytest.raises(ModerationUnavailableError, match=UNAVAILABLE):
        screen("hello", user=None, source="question")
    check = ModerationCheck.objects.get()
    assert check.status == "unavailable"
    assert "OPENAI_API_KEY" in check.error


# --- against a real server on loopback that stalls (the hostile stub) ---------------


@pytest.fixture
def stub_moderation(model_stub, settings):
    require_openai_moderation(settings)
    return model_stub


def test_a_server_that_never_answers_is_given_up_on_in_time(stub_moderation):
    stub_moderation.moderations.default = StallHeaders()
    outcome, elapsed = screen_timed("What is the leave policy?")
    assert isinstance(outcome, ModerationUnavailableError)
    assert UNAVAILABLE in outcome.message
    assert elapsed < TIMEOUT + 1
    assert ModerationCheck.objects.get().status == "unavailable"


@pytest.mark.parametrize(
    "failure",
    [Status(500), Status(503), Raw(b"{not json"), Raw(b"[]")],
    ids=["500", "503", "malformed", "array"],
)
def test_the_stubs_failures_fail_closed_in_time(stub_moderation, failure):
    stub_moderation.moderations.default = failure
    outcome, elapsed = screen_timed("What is the leave policy?")
    assert isinstance(outcome, ModerationUnavailableError)
    assert elapsed < TIMEOUT + 1


def test_the_stub_answering_normally_passes(stub_moderation):
    stub_moderation.moderations.push(Moderation(categories=["hate"]))
    check = screen("text", user=None, source="question")
    assert check.status == "ok"
    assert check.flagged_categories == ["hate"]
