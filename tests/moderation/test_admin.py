"""Admins read moderation checks in the Django admin; nobody adds, edits or deletes."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ragapp.moderation.models import ModerationCheck
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def make_check(**fields) -> ModerationCheck:
    defaults = {
        "source": "question",
        "status": "ok",
        "provider": "local",
        "model": "local/test",
        "text_excerpt": "What is the leave policy?",
        "text_sha256": "0" * 64,
        "latency_ms": 12,
    }
    return ModerationCheck.objects.create(**{**defaults, **fields})


@pytest.fixture
def checks(admin_user):
    return [
        make_check(),
        make_check(
            user=admin_user,
            source="answer",
            flagged=True,
            categories={"harassment": True, "hate": False},
            text_excerpt="<script>alert(1)</script> go away",
        ),
        make_check(status="unavailable", provider="openai", error="HTTP 503"),
    ]


def test_superuser_sees_the_list_with_filters_and_search(client, admin_user, checks):
    client.force_login(admin_user)
    url = reverse("admin:moderation_moderationcheck_changelist")
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "3 moderation checks" in html
    assert "harassment" in html
    assert "&lt;script&gt;" in html and "<script>alert(1)" not in html
    for name in ("flagged", "source", "status", "provider"):
        assert f"?{name}__exact=" in html or f"?{name}=" in html
    flagged = client.get(url, {"flagged__exact": "1"})
    assert "1 moderation check" in flagged.content.decode()
    found = client.get(url, {"q": "leave policy"})
    assert "2 moderation checks" in found.content.decode()


def test_a_check_is_shown_read_only(client, admin_user, checks):
    client.force_login(admin_user)
    page = client.get(
        reverse("admin:moderation_moderationcheck_change", args=[checks[2].pk])
    )
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert "HTTP 503" in page.content.decode()


def test_nobody_adds_edits_or_deletes_checks(client, admin_user, checks):
    client.force_login(admin_user)
    check = checks[0]
    assert (
        client.get(reverse("admin:moderation_moderationcheck_add")).status_code == 403
    )
    delete = reverse("admin:moderation_moderationcheck_delete", args=[check.pk])
    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:moderation_moderationcheck_changelist")
    client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": [check.pk], "post": "yes"},
    )
    change = reverse("admin:moderation_moderationcheck_change", args=[check.pk])
    assert client.post(change, {"flagged": "on"}).status_code == 403
    assert ModerationCheck.objects.count() == 3
    assert ModerationCheck.objects.get(pk=check.pk).flagged is False


def test_staff_without_the_permission_cannot_read_checks(client, checks):
    reader = UserFactory(username="plainstaff", is_staff=True)
    client.force_login(reader)
    url = reverse("admin:moderation_moderationcheck_changelist")
    assert client.get(url).status_code == 403
