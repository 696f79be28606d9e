"""The usage page and admins' audited reads of staff conversations."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from ragapp.answers import usage
from ragapp.answers.models import Citation, ConversationRead, Feedback, Message, Thread
from ragapp.moderation.models import ModerationCheck
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(db):
    user = UserFactory(username="alice")
    user.groups.add(Group.objects.get(name="Admins"))
    return user


def message(user, question, *, days_ago=0, tokens=(100, 20), cost="0.001", **fields):
    thread = Thread.objects.create(user=user, title=question)
    m = Message.objects.create(
        thread=thread,
        question=question,
        status=Message.Status.ANSWERED,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        cost_usd=Decimal(cost),
        **fields,
    )
    Message.objects.filter(pk=m.pk).update(
        created_at=timezone.now() - dt.timedelta(days=days_ago)
    )
    return m


def test_questions_per_day_counts_every_day_of_the_period(staff):
    message(staff, "today")
    message(staff, "today too")
    message(staff, "two days ago", days_ago=2)
    message(staff, "too old", days_ago=40)
    per_day = usage.questions_per_day(usage.Period.last(7))
    assert len(per_day) == 7
    assert per_day[-1][1] == 2 and per_day[-3][1] == 1
    assert sum(n for _, n in per_day) == 3


def test_tokens_and_cost_per_user_and_per_cited_collection(staff, handbook):
    other = UserFactory(username="bob")
    cited = message(staff, "meals", tokens=(1000, 100), cost="0.010")
    Citation.objects.create(
        message=cited,
        marker=1,
        document=handbook.documents.first(),
        document_title="Travel policy",
        quote="q",
    )
    message(other, "nothing cited", tokens=(10, 1), cost="0.0001")
    period = usage.Period.last(30)
    by_user = {r.label: r for r in usage.usage_by_user(period)}
    assert by_user["staff"].prompt_tokens == 1000
    assert by_user["staff"].cost_usd == Decimal("0.010")
    assert by_user["bob"].questions == 1
    by_collection = {r.label: r for r in usage.usage_by_collection(period)}
    assert by_collection["Handbook"].completion_tokens == 100
    assert by_collection["(no citation)"].questions == 1


def test_usage_page_is_for_admins_only(client, staff, admin):
    url = reverse("web:usage")
    assert client.get(url).status_code == 302
    client.force_login(staff)
    assert client.get(url).status_code == 403
    client.force_login(admin)
    page = client.get(url)
    assert page.status_code == 200
    assert "Questions per day" in page.content.decode()


def test_usage_page_shows_feedback_moderation_and_a_chart(client, staff, admin):
    m = message(staff, "How are laptops locked?")
    Feedback.objects.create(message=m, user=staff, rating=-1, comment="<b>wrong</b>")
    ModerationCheck.objects.create(
        user=staff,
        source="question",
        flagged=True,
        categories={"violence": True},
        latency_ms=3,
        status="ok",
    )
    client.force_login(admin)
    html = client.get(reverse("web:usage")).content.decode()
    assert "&lt;b&gt;wrong&lt;/b&gt;" in html
    assert "not helpful" in html
    assert "flagged: violence" in html
    assert "<svg" in html and "<rect" in html
    # A bad date is explained, not a 500.
    html = client.get(reverse("web:usage"), {"from": "yesterday"}).content.decode()
    assert "YYYY-MM-DD" in html


def test_an_admin_reading_a_conversation_is_logged_and_shown_to_its_owner(
    client, staff, admin
):
    m = message(staff, "A private question", answer="A private answer")
    client.force_login(admin)
    page = client.get(reverse("web:usage-conversation", args=[m.thread_id]))
    assert "A private answer" in page.content.decode()
    read = ConversationRead.objects.get()
    assert (read.reader_name, read.owner_name) == ("alice", "staff")
    assert "A private question" in read.thread_title
    # The read log survives the thread's deletion.
    client.force_login(staff)
    own = client.get(reverse("web:thread", args=[m.thread_id])).content.decode()
    assert "Read by alice (admin)" in own
    m.thread.delete()
    assert ConversationRead.objects.get().thread is None


def test_staff_cannot_read_others_conversations_and_admins_cannot_edit_the_log(
    client, staff, admin
):
    m = message(admin, "admin's own")
    client.force_login(staff)
    assert (
        client.get(reverse("web:usage-conversation", args=[m.thread_id])).status_code
        == 403
    )
    # No one changes the read log through the Django admin, superusers included.
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    client.get(reverse("web:usage-conversation", args=[m.thread_id]))
    read = ConversationRead.objects.get()
    change = reverse("admin:answers_conversationread_change", args=[read.pk])
    delete = reverse("admin:answers_conversationread_delete", args=[read.pk])
    client.post(change, {"reader_name": "nobody"})
    client.post(delete, {"post": "yes"})
    read.refresh_from_db()
    assert read.reader_name == "root"


def test_admins_group_cannot_read_conversations_in_the_django_admin(
    client, staff, admin
):
    m = message(staff, "private")
    admin.is_staff = True
    admin.save()
    client.force_login(admin)
    url = reverse("admin:answers_message_change", args=[m.pk])
    assert client.get(url).status_code in (302, 403)


def test_a_superuser_opening_a_message_in_the_django_admin_is_logged(client, staff):
    m = message(staff, "private")
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    assert (
        client.get(reverse("admin:answers_message_change", args=[m.pk])).status_code
        == 200
    )
    assert ConversationRead.objects.get().reader_name == "root"
