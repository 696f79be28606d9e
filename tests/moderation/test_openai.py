"""The OpenAI moderation path against respx fakes of `/v1/moderations`.

respx answers at the SDK's transport (tests/openai_fake.py) in OpenAI's wire
format; the SDK, ragapp's retries and parsing run for real.
"""

from __future__ import annotations

import json

import httpx
import pytest

from ragapp.moderation.services import screen
from ragapp.providers.base import MODERATION_CATEGORIES
from ragapp.providers.exceptions import (
    ProviderConfigurationError,
    ProviderRateLimitedError,
)
from ragapp.providers.moderation import (
    MAX_INPUT_CHARS,
    OpenAIModerationProvider,
    get_moderation_provider,
    moderation_provider_choice,
)
from tests.moderation.wire import (
    answer,
    moderation_body,
    moderation_result,
    server_error,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def openai_moderation(openai_http, settings):
    settings.MODERATION_PROVIDER = "openai"
    settings.MODERATION_REQUIRED = True
    settings.MODERATION_TIMEOUT_SECONDS = 3.0
    settings.MODERATION_THRESHOLDS = {}
    settings.MODERATION_CATEGORIES = MODERATION_CATEGORIES
    return openai_http


def test_request_is_openais_moderation_call(openai_moderation, settings):
    route = openai_moderation.post("/moderations").mock(side_effect=answer())
    check = screen("Where is the expense policy?", user=None, source="question")
    sent = json.loads(route.calls.last.request.content)
    assert sent == {
        "model": settings.MODERATION_MODEL,
        "input": "Where is the expense policy?",
    }
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test"
    assert check.provider == "openai"
    assert check.model == "omni-moderation-latest"
    assert check.status == "ok"
    assert not check.flagged


def test_openai_verdict_is_recorded_with_its_scores(openai_moderation):
    openai_moderation.post("/moderations").mock(
        side_effect=answer("violence", "harassment/threatening", score=0.88)
    )
    check = screen("I will find you.", user=None, source="question")
    assert check.flagged
    assert check.flagged_categories == ["harassment/threatening", "violence"]
    assert check.category_scores["violence"] == pytest.approx(0.88)
    assert check.category_scores["hate"] == pytest.approx(0.000012)


def test_long_text_is_sent_as_several_inputs_and_any_piece_flags(openai_moderation):
    def respond(request):
        inputs = json.loads(request.content)["input"]
        results = [moderation_result() for _ in inputs]
        results[-1] = moderation_result("hate", score=0.7)
        return httpx.Response(200, json=moderation_body(*results))

    route = openai_moderation.post("/moderations").mock(side_effect=respond)
    text = "word " * (MAX_INPUT_CHARS // 4)
    check = screen(text, user=None, source="answer")
    inputs = json.loads(route.calls.last.request.content)["input"]
    assert len(inputs) == 2
    assert all(len(piece) <= MAX_INPUT_CHARS for piece in inputs)
    assert check.flagged
    assert check.category_scores["hate"] == pytest.approx(0.7)


def test_older_models_without_illicit_categories_are_read(openai_moderation):
    result = moderation_result("sexual")
    for key in ("categories", "category_scores", "category_applied_input_types"):
        result[key].pop("illicit")
        result[key].pop("illicit/violent")
    openai_moderation.post("/moderations").mock(
        return_value=httpx.Response(
            200, json=moderation_body(result, model="text-moderation-007")
        )
    )
    check = screen("text", user=None, source="api")
    assert check.flagged_categories == ["sexual"]
    assert check.categories["illicit"] is False
    assert check.model == "text-moderation-007"


def test_one_server_error_is_retried_quickly(openai_moderation):
    route = openai_moderation.post("/moderations").mock(
        side_effect=[server_error(502), answer()]
    )
    check = screen("hello", user=None, source="question")
    assert route.call_count == 2
    assert check.status == "ok"


def test_a_long_retry_after_is_not_waited_for(openai_moderation):
    route = openai_moderation.post("/moderations").mock(
        return_value=httpx.Response(
            429,
            headers={"retry-after": "30"},
            json={"error": {"message": "Rate limit", "type": "requests"}},
        )
    )
    provider = get_moderation_provider()
    with pytest.raises(ProviderRateLimitedError):
        provider.moderate("hello")
    assert route.call_count == 1


def test_a_rejected_key_is_not_retried(openai_moderation):
    route = openai_moderation.post("/moderations").mock(
        return_value=httpx.Response(
            401,
            json={
                "error": {
                    "message": "Incorrect API key provided: sk-test.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
        )
    )
    with pytest.raises(ProviderConfigurationError, match="OPENAI_API_KEY"):
        OpenAIModerationProvider("omni-moderation-latest", timeout=3.0).moderate("x")
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("key", "base_url", "expected"),
    [
        ("sk-live", "", "openai"),
        ("sk-live", "https://api.openai.com/v1", "openai"),
        # A LAN server (Ollama, vLLM) has no /moderations: screen offline.
        ("unused", "http://ollama.lan:11434/v1", "local"),
        ("", "http://ollama.lan:11434/v1", "local"),
        ("", "", "local"),
    ],
)
def test_auto_sends_screening_to_openai_only_with_a_key_for_openai(
    settings, key, base_url, expected
):
    settings.MODERATION_PROVIDER = "auto"
    settings.OPENAI_API_KEY = key
    settings.OPENAI_BASE_URL = base_url
    assert moderation_provider_choice() == expected


def test_openai_forced_for_a_compatible_server_uses_its_url(settings, openai_http):
    settings.MODERATION_PROVIDER = "openai"
    settings.OPENAI_API_KEY = ""
    openai_http.post("/moderations").mock(side_effect=answer())
    assert get_moderation_provider().moderate("hi").flagged is False
