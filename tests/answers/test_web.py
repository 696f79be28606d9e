"""The ask page and its event stream, through Django's test client."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from ragapp.answers.models import Message
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def sse_events(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("ascii")
    events = []
    for block in body.split("\n\n"):
        data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
        if data:
            events.append(json.loads("\n".join(data)))
    return events


@pytest.fixture
def client_staff(client, staff):
    client.force_login(staff)
    return client


def test_ask_page_needs_login(client):
    response = client.get(reverse("web:ask"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_ask_page_lists_readable_collections_only(client_staff, handbook, garden):
    page = client_staff.get(reverse("web:ask")).content.decode()
    assert "Handbook" in page
    assert "Garden" not in page
    assert 'id="ask-form"' in page


def test_question_streams_as_server_sent_events(client_staff, handbook):
    response = client_staff.post(
        reverse("web:ask-stream"),
        {"question": "How much are meal expenses refunded per day?"},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    events = sse_events(response)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert "delta" in kinds and "citation" in kinds
    text = "".join(e["text"] for e in events if e["type"] == "delta")
    assert "35 euros" in text
    assert events[-1]["status"] == "answered"
    # The thread page shows the recorded turn with its citations.
    page = client_staff.get(reverse("web:thread", args=[events[0]["thread_id"]]))
    assert "35 euros" in page.content.decode()
    assert "Travel policy" in page.content.decode()


def test_follow_up_in_the_same_thread(client_staff, handbook):
    first = sse_events(
        client_staff.post(
            reverse("web:ask-stream"), {"question": "Which class do staff travel in?"}
        )
    )
    thread = first[0]["thread_id"]
    second = sse_events(
        client_staff.post(
            reverse("web:ask-stream"),
            {"question": "And with a director's approval?", "thread": thread},
        )
    )
    assert second[0]["thread_id"] == thread


def test_empty_question_is_a_clear_400(client_staff):
    response = client_staff.post(reverse("web:ask-stream"), {"question": "  "})
    assert response.status_code == 400
    assert response.json() == {"error": "Ask a question first."}


def test_someone_elses_thread_is_404(client, staff, handbook):
    client.force_login(staff)
    events = sse_events(
        client.post(reverse("web:ask-stream"), {"question": "How are laptops secured?"})
    )
    thread = events[0]["thread_id"]
    client.force_login(UserFactory(username="intruder"))
    assert client.get(reverse("web:thread", args=[thread])).status_code == 404
    response = client.post(
        reverse("web:ask-stream"), {"question": "And then?", "thread": thread}
    )
    assert response.status_code == 404
    assert Message.objects.filter(thread_id=thread).count() == 1


def test_stream_needs_post_and_csrf(staff, handbook):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.get(reverse("web:ask-stream")).status_code == 405
    response = client.post(reverse("web:ask-stream"), {"question": "Laptops?"})
    assert response.status_code == 403
    assert Message.objects.count() == 0


def test_recorded_answer_is_escaped_on_the_thread_page(client_staff, staff, handbook):
    from ragapp.answers.models import Thread

    thread = Thread.objects.create(user=staff, title="<script>alert(1)</script>")
    Message.objects.create(
        thread=thread,
        question="<img src=x onerror=alert(1)>",
        answer="<script>window.__pwned=1</script>",
        status=Message.Status.ANSWERED,
    )
    page = client_staff.get(reverse("web:thread", args=[thread.pk])).content.decode()
    assert "<script>window.__pwned" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "<img src=x" not in page


@pytest.mark.django_db(transaction=True)
def test_under_asgi_each_event_leaves_as_it_is_made(
    model_stub, settings, staff, handbook
):
    """The ASGI path streams: the first words arrive while the model still writes.

    The stub sends its text, then stalls; under a buffering server the first
    event would only leave after the stall ended the answer.
    """
    from asgiref.sync import async_to_sync, sync_to_async
    from django.test import AsyncClient

    from tests.model_stub import Reply

    settings.MODEL_TIMEOUT_SECONDS = 3.0
    model_stub.chat.push(
        Reply("Meals are refunded up to 35 euros a day [1].", end="stall")
    )

    async def scenario() -> tuple[str, list[dict]]:
        client = AsyncClient()
        await client.aforce_login(staff)
        response = await client.post(
            reverse("web:ask-stream"),
            {"question": "How much are meal expenses refunded per day?"},
        )
        assert response["Content-Type"] == "text/event-stream"
        events, status_at_first_delta = [], None
        async for chunk in response.streaming_content:
            event = json.loads(chunk.decode().split("data: ", 1)[1])
            events.append(event)
            if event["type"] == "delta" and status_at_first_delta is None:
                status_at_first_delta = await sync_to_async(
                    lambda: Message.objects.get(pk=events[0]["message_id"]).status
                )()
        return status_at_first_delta, events

    status_at_first_delta, events = async_to_sync(scenario)()
    assert status_at_first_delta == Message.Status.ANSWERING
    assert events[-1]["type"] == "finished"
    assert events[-1]["status"] == Message.Status.INTERRUPTED
