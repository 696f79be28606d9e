"""screen(): thresholds, enforced categories, and the record of every verdict."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured

from ragapp.moderation.config import (
    parse_categories,
    parse_provider,
    parse_thresholds,
)
from ragapp.moderation.models import ModerationCheck
from ragapp.moderation.services import screen, verdict_apply
from ragapp.providers.base import MODERATION_CATEGORIES, ModerationResult
from tests.factories import UserFactory
from tests.moderation.wire import answer

pytestmark = pytest.mark.django_db


def result(scores: dict[str, float]) -> ModerationResult:
    return ModerationResult(
        flagged=False,
        categories=dict.fromkeys(MODERATION_CATEGORIES, False),
        category_scores={n: scores.get(n, 0.0) for n in MODERATION_CATEGORIES},
        model="m",
    )


@pytest.fixture
def offline(settings):
    settings.MODERATION_PROVIDER = "local"
    settings.MODERATION_REQUIRED = True
    settings.MODERATION_THRESHOLDS = {}
    settings.MODERATION_CATEGORIES = MODERATION_CATEGORIES
    return settings


# --- policy ------------------------------------------------------------------------


def test_a_threshold_flags_a_score_at_or_over_it():
    verdict = verdict_apply(
        result({"hate": 0.4}), thresholds={"hate": 0.4}, enforced=MODERATION_CATEGORIES
    )
    assert verdict.flagged
    assert verdict.categories["hate"]


def test_a_threshold_overrides_the_providers_own_verdict():
    flagged = ModerationResult(
        flagged=True,
        categories={n: n == "violence" for n in MODERATION_CATEGORIES},
        category_scores={
            n: 0.55 if n == "violence" else 0.0 for n in MODERATION_CATEGORIES
        },
        model="m",
    )
    verdict = verdict_apply(
        flagged, thresholds={"violence": 0.8}, enforced=MODERATION_CATEGORIES
    )
    assert not verdict.flagged
    assert not verdict.categories["violence"]


def test_categories_not_enforced_are_recorded_but_do_not_flag():
    verdict = verdict_apply(
        result({"sexual": 0.9}),
        thresholds={"sexual": 0.5},
        enforced=("hate", "violence"),
    )
    assert verdict.categories["sexual"]
    assert not verdict.flagged


def test_thresholds_read_both_formats():
    expected = {"hate": 0.3, "self-harm/intent": 0.2}
    assert parse_thresholds("hate=0.3, self-harm/intent=0.2", "V") == expected
    assert parse_thresholds('{"hate": 0.3, "self-harm/intent": 0.2}', "V") == expected
    assert parse_thresholds("", "V") == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("hate", "not category=threshold"),
        ("hat=0.3", "not a moderation category"),
        ("hate=high", "number from 0 to 1"),
        ("hate=1.5", "number from 0 to 1"),
        ('{"hate": true}', "number from 0 to 1"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_thresholds_stop_startup_naming_the_variable(value, message):
    with pytest.raises(ImproperlyConfigured, match=message) as raised:
        parse_thresholds(value, "RAGAPP_MODERATION_THRESHOLDS")
    assert "RAGAPP_MODERATION_THRESHOLDS" in str(raised.value)


def test_enforced_categories_default_to_all_and_keep_openais_order():
    assert parse_categories([], "V") == MODERATION_CATEGORIES
    assert parse_categories(["violence", "hate"], "V") == ("hate", "violence")
    with pytest.raises(ImproperlyConfigured, match="RAGAPP_MODERATION_CATEGORIES"):
        parse_categories(["profanity"], "RAGAPP_MODERATION_CATEGORIES")


def test_provider_setting_accepts_names_and_class_paths():
    assert parse_provider("Local", "V") == "local"
    assert parse_provider("myapp.screens.Screen", "V") == "myapp.screens.Screen"
    with pytest.raises(ImproperlyConfigured, match="RAGAPP_MODERATION_PROVIDER"):
        parse_provider("azure", "RAGAPP_MODERATION_PROVIDER")


# --- screen() through the offline provider ------------------------------------------


def test_every_decision_is_recorded(offline):
    user = UserFactory()
    text = "What does the handbook say about parental leave? " * 40
    check = screen(text, user=user, source="question")
    stored = ModerationCheck.objects.get(pk=check.pk)
    assert stored.user == user
    assert stored.source == "question"
    assert stored.status == "ok"
    assert stored.flagged is False
    assert stored.provider == "local"
    assert stored.model.startswith("local/")
    assert stored.text_excerpt == text[:1000]
    assert stored.text_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert set(stored.category_scores) == set(MODERATION_CATEGORIES)
    assert stored.latency_ms >= 0
    assert stored.error == ""


def test_flagged_text_is_recorded_with_its_categories(offline):
    check = screen("go kill yourself", user=None, source="answer")
    assert check.flagged
    assert "harassment" in check.flagged_categories
    assert ModerationCheck.objects.filter(flagged=True, source="answer").count() == 1


def test_a_configured_threshold_applies_to_the_offline_screen(offline):
    text = "What does the employee handbook say about harassment complaints?"
    assert not screen(text, user=None, source="question").flagged
    offline.MODERATION_THRESHOLDS = {"harassment": 0.0}
    assert screen(text, user=None, source="question").flagged


def test_unenforced_category_does_not_stop_the_text(offline):
    offline.MODERATION_CATEGORIES = ("hate",)
    check = screen("go kill yourself", user=None, source="question")
    assert check.categories["harassment"]
    assert not check.flagged


def test_anonymous_user_is_recorded_as_nobody(offline):
    check = screen("hello", user=AnonymousUser(), source="api")
    assert check.user is None


def test_blank_text_is_recorded_as_passed(offline):
    check = screen("  ", user=None, source="answer")
    assert check.status == "ok"
    assert not check.flagged


def test_text_postgresql_cannot_store_is_still_recorded(offline):
    check = screen("nul \x00 and a lone \ud800 surrogate", user=None, source="api")
    check.refresh_from_db()
    assert "\x00" not in check.text_excerpt


def test_an_unknown_source_is_a_programming_error(offline):
    with pytest.raises(ValueError, match="source"):
        screen("hello", user=None, source="email")


def test_screen_uses_openai_when_configured(openai_http, settings):
    settings.MODERATION_PROVIDER = "openai"
    openai_http.post("/moderations").mock(side_effect=answer("illicit"))
    check = screen("How do I pick a lock?", user=None, source="question")
    assert check.provider == "openai"
    assert check.flagged_categories == ["illicit"]
