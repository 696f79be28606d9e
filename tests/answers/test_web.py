"""The staff pages: asking, the answer stream, threads, sources and feedback.

Answers are written by the real background runner in a thread of the test
process, with events in the real (test) Redis, so these tests commit
(transactional). The stream endpoint is read through Django's test client,
which consumes it to its end; the real-browser tests (tests/browser) watch
it arrive piece by piece.
"""

import re
import threading
import time
import warnings

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ragapp.answers import eventlog, runner
from ragapp.answers.models import Citation, Feedback, Message, Thread
from ragapp.documents.models import Document
from tests.factories import CollectionFactory, UserFactory, indexed_document
from tests.model_stub import Moderation, Reply

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}
MEALS = "How much are meal expenses refunded per day?"


@pytest.fixture
def client_staff(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture(autouse=True)
def idle_runner():
    """No test leaves an answer being written behind it."""
    yield
    assert runner.wait_idle(30), "an answer was still being written"


def ask_htmx(client, question=MEALS, **fields):
    data = {"question": question, "scope": "1", **fields}
    return client.post(reverse("web:ask-submit"), data, **HTMX)


def stream(client, message_id, **headers) -> list[tuple[str, str, str]]:
    """(event, id, html) of every event the stream sends until it ends."""
    response = client.get(reverse("web:message-stream", args=[message_id]), **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    # The test client is synchronous: it consumes the async stream to its end.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        body = b"".join(response).decode()
    events = []
    for block in body.split("\n\n"):
        name = event_id = ""
        data = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if name:
            events.append((name, event_id, "\n".join(data)))
    return events


def last_message() -> Message:
    return Message.objects.order_by("-pk").first()


# --- the page ---------------------------------------------------------------------


def test_ask_page_needs_login(client):
    response = client.get(reverse("web:ask"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_ask_page_offers_only_readable_collections(client_staff, handbook, garden):
    page = client_staff.get(reverse("web:ask")).content.decode()
    assert "Handbook" in page
    assert "Garden" not in page
    assert 'id="ask-form"' in page
    assert 'hx-post="/ask/send"' in page
    assert "ask.js" not in page  # the hand-written SSE client is gone


# --- asking and streaming ------------------------------------------------------------


def test_question_posts_with_htmx_and_the_turn_attaches_to_its_stream(
    client_staff, handbook
):
    response = ask_htmx(client_staff)
    assert response.status_code == 200
    html = response.content.decode()
    message = last_message()
    assert f'sse-connect="/ask/messages/{message.pk}/stream"' in html
    assert 'sse-swap="delta"' in html
    assert response["HX-Push-Url"] == f"/ask/{message.thread_id}/"
    assert runner.wait_idle(30)
    events = stream(client_staff, message.pk)
    # Finished before anyone read: the stream says so at once, rendered.
    assert [name for name, _, _ in events] == ["end"]
    end = events[0][2]
    assert "35 euros" in end
    assert f'href="/ask/messages/{message.pk}/sources/' in end
    assert "Extractive answer" in end
    assert "sse-connect" not in end


def test_plain_form_post_without_javascript_redirects_to_the_thread(
    client_staff, handbook
):
    response = client_staff.post(reverse("web:ask-submit"), {"question": MEALS})
    message = last_message()
    assert response.status_code == 302
    assert response["Location"] == f"/ask/{message.thread_id}/#turn-{message.pk}"
    assert runner.wait_idle(30)
    page = client_staff.get(f"/ask/{message.thread_id}/").content.decode()
    assert "35 euros" in page


@pytest.fixture
def slow_model(model_stub, settings):
    settings.CHAT_MODEL = "gpt-4o-mini"
    settings.MODERATION_PROVIDER = "local"
    settings.MODERATION_FIRST_WINDOW_CHARS = 20
    settings.MODERATION_STREAM_CHARS = 40
    settings.MODERATION_MAX_WAIT_SECONDS = 0.2
    return model_stub


def test_text_arrives_in_pieces_before_the_answer_ends(
    client_staff, handbook, slow_model
):
    words = "Meals are refunded up to 35 euros a day with receipts [1]. " * 4
    slow_model.chat.push(Reply(words, chunk_size=6, delay=0.05))
    ask_htmx(client_staff)
    message = last_message()
    events = stream(client_staff, message.pk)
    names = [name for name, _, _ in events]
    assert names[-1] == "end"
    pieces = [html for name, _, html in events if name in ("snapshot", "delta")]
    assert len(pieces) >= 2, names
    streamed = re.sub(r"<[^>]+>", "", "".join(pieces))
    assert "35 euros" in streamed
    assert "citation" in names or "citations" in names


def test_a_reader_resumes_after_the_last_event_it_saw(
    client_staff, handbook, slow_model
):
    slow_model.chat.push(
        Reply("Meals are refunded up to 35 euros [1]. " * 6, chunk_size=8)
    )
    ask_htmx(client_staff)
    message = last_message()
    assert runner.wait_idle(30)
    logged = list(eventlog.read(message))
    deltas = [e for e in logged if e.kind == "delta"]
    assert len(deltas) >= 2
    events = stream(client_staff, message.pk, HTTP_LAST_EVENT_ID=deltas[0].id)
    names = [name for name, _, _ in events]
    assert "snapshot" not in names
    assert names.count("delta") == len(deltas) - 1
    assert names[-1] == "end"
    ids = [event_id for _, event_id, _ in events]
    assert all(i > deltas[0].id for i in ids)


def test_an_answer_nobody_reads_still_finishes(client_staff, handbook):
    ask_htmx(client_staff)  # and never open the stream
    assert runner.wait_idle(30)
    message = last_message()
    assert message.status == Message.Status.ANSWERED
    assert "35 euros" in message.answer
    assert message.heartbeat_at is not None


def test_stop_ends_the_answer_keeping_what_was_released(
    client_staff, handbook, slow_model
):
    slow_model.chat.push(
        Reply("Meals are refunded [1]. " * 200, chunk_size=5, delay=0.02)
    )
    ask_htmx(client_staff)
    message = last_message()
    response = client_staff.post(reverse("web:message-stop", args=[message.pk]), **HTMX)
    assert response.status_code == 204
    assert runner.wait_idle(30)
    message.refresh_from_db()
    assert message.status == Message.Status.INTERRUPTED
    assert message.status_reason == "You stopped the answer."
    assert [name for name, _, _ in stream(client_staff, message.pk)] == ["end"]


# --- caps ----------------------------------------------------------------------------


def test_past_the_per_user_cap_the_asker_is_told_to_wait(
    client_staff, handbook, slow_model, settings
):
    settings.ANSWER_MAX_CONCURRENT_PER_USER = 1
    slow_model.chat.push(Reply("Meals [1]. " * 100, chunk_size=5, delay=0.02))
    ask_htmx(client_staff)
    first = last_message()
    response = ask_htmx(client_staff, "And the train class?")
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#ask-error"
    assert "already have 1 answer being written" in response.content.decode()
    assert last_message() == first  # nothing recorded for the refused one
    runner.answer_stop(message=first, reason="test over")


def test_past_the_per_process_cap_the_asker_is_told_it_is_busy(
    client_staff, handbook, slow_model, settings
):
    settings.ANSWER_MAX_CONCURRENT_PER_PROCESS = 1
    slow_model.chat.push(Reply("Meals [1]. " * 100, chunk_size=5, delay=0.02))
    ask_htmx(client_staff)
    first = last_message()
    other = UserFactory(username="other")
    other.groups.add(*client_staff_groups(first))
    second = Client()
    second.force_login(other)
    response = ask_htmx(second, "Which class do staff travel in?")
    assert "busy writing other answers" in response.content.decode()
    runner.answer_stop(message=first, reason="test over")


def client_staff_groups(message):
    return list(message.thread.user.groups.all())


# --- nothing stays "answering" --------------------------------------------------------


def test_the_sweep_ends_an_answer_whose_writer_died(staff, handbook):
    thread = Thread.objects.create(user=staff, title="t")
    message = Message.objects.create(
        thread=thread,
        question="q",
        heartbeat_at=timezone.now() - timezone.timedelta(minutes=5),
    )
    from ragapp.answers.events import Delta

    eventlog.append(message, Delta(text="Meals are refunded"))
    assert runner.answers_sweep() == 1
    message.refresh_from_db()
    assert message.status == Message.Status.INTERRUPTED
    assert message.answer == "Meals are refunded"
    assert "server writing it stopped" in message.status_reason
    assert [e.kind for e in eventlog.read(message)][-1] == "finished"
    assert runner.answers_sweep() == 0


def test_a_reader_of_a_dead_answer_sees_it_end(client_staff, staff, handbook):
    thread = Thread.objects.create(user=staff, title="t")
    message = Message.objects.create(
        thread=thread,
        question="q",
        heartbeat_at=timezone.now() - timezone.timedelta(minutes=5),
    )
    events = stream(client_staff, message.pk)
    assert events[-1][0] == "end"
    assert "server writing it stopped" in events[-1][2]


# --- withheld answers never come back --------------------------------------------------


def test_a_withheld_answer_is_never_shown_again(
    client_staff, handbook, model_stub, settings
):
    settings.MODERATION_PROVIDER = "openai"
    settings.MODERATION_REQUIRED = True
    model_stub.moderations.push(Moderation(), Moderation(categories=["violence"]))
    ask_htmx(client_staff)
    assert runner.wait_idle(30)
    message = last_message()
    assert message.withheld and message.status == Message.Status.STOPPED
    assert message.answer == "" and message.citations.count() == 0
    page = client_staff.get(f"/ask/{message.thread_id}/").content.decode()
    assert "35 euros" not in page
    assert "withheld" in page
    end = stream(client_staff, message.pk)[-1][2]
    assert "35 euros" not in end
    response = client_staff.get(reverse("web:citation", args=[message.pk, 1]))
    assert response.status_code == 404


def test_moderation_down_withholds_and_says_so(
    client_staff, handbook, model_stub, settings
):
    from tests.model_stub import Status

    settings.MODERATION_PROVIDER = "openai"
    settings.MODERATION_REQUIRED = True
    model_stub.moderations.push(Moderation())
    model_stub.moderations.default = Status(503)
    ask_htmx(client_staff)
    assert runner.wait_idle(30)
    message = last_message()
    assert message.withheld
    page = client_staff.get(f"/ask/{message.thread_id}/").content.decode()
    assert "content check is unavailable" in page
    assert "35 euros" not in page


# --- citations follow access -----------------------------------------------------------


def answered(client) -> Message:
    ask_htmx(client)
    assert runner.wait_idle(30)
    message = last_message()
    assert message.status == Message.Status.ANSWERED
    return message


def test_citation_panel_shows_title_pages_and_quote(client_staff, handbook):
    message = answered(client_staff)
    citation = message.citations.first()
    url = reverse("web:citation", args=[message.pk, citation.marker])
    panel = client_staff.get(url, **HTMX).content.decode()
    assert "Travel policy" in panel
    assert "35 euros" in panel
    assert "<html" not in panel  # a fragment for the side panel
    page = client_staff.get(url).content.decode()
    assert "<html" in page and "Back to the conversation" in page
    # Not a PDF: the passage in context, highlighted.
    context = client_staff.get(
        reverse("web:document-passages", args=[citation.document_id]),
        {"chunk": citation.chunk_id},
    ).content.decode()
    assert f'id="chunk-{citation.chunk_id}" class="passage cited"' in context


def test_reopened_thread_hides_citations_the_reader_lost_access_to(
    client_staff, staff, handbook, readers
):
    message = answered(client_staff)
    citation = message.citations.first()
    staff.groups.remove(readers)
    page = client_staff.get(f"/ask/{message.thread_id}/").content.decode()
    assert "Travel policy" not in page
    url = reverse("web:citation", args=[message.pk, citation.marker])
    assert client_staff.get(url).status_code == 404
    assert (
        client_staff.get(
            reverse("web:document-file", args=[citation.document_id])
        ).status_code
        == 404
    )


def test_citations_of_a_deleted_document_are_gone(client_staff, handbook):
    message = answered(client_staff)
    citation = message.citations.first()
    Document.objects.filter(pk=citation.document_id).delete()
    page = client_staff.get(f"/ask/{message.thread_id}/").content.decode()
    assert "Travel policy" not in page
    assert (
        client_staff.get(reverse("web:citation", args=[message.pk, 1])).status_code
        == 404
    )


def test_another_users_answer_stream_citation_and_thread_are_404(
    client_staff, handbook
):
    message = answered(client_staff)
    intruder = UserFactory(username="intruder")
    intruder.groups.add(*Group.objects.filter(name="Handbook readers"))
    other = Client()
    other.force_login(intruder)
    citation = message.citations.first()
    for url in (
        f"/ask/{message.thread_id}/",
        reverse("web:message-stream", args=[message.pk]),
        reverse("web:message", args=[message.pk]),
        reverse("web:citation", args=[message.pk, citation.marker]),
        reverse("web:citation-page", args=[message.pk, citation.marker, 1]),
    ):
        assert other.get(url).status_code == 404, url
    for url in (
        reverse("web:message-feedback", args=[message.pk]),
        reverse("web:message-stop", args=[message.pk]),
        reverse("web:thread-rename", args=[message.thread_id]),
        reverse("web:thread-delete", args=[message.thread_id]),
    ):
        assert other.post(url, {"rating": "1", "title": "x"}).status_code == 404, url
    assert Thread.objects.filter(pk=message.thread_id).exists()
    assert not Feedback.objects.exists()


def test_a_document_of_an_unreadable_collection_is_404(client_staff, garden):
    document = garden.documents.first()
    for url in (
        reverse("web:document-file", args=[document.pk]),
        reverse("web:document-passages", args=[document.pk]),
    ):
        assert client_staff.get(url).status_code == 404


def test_original_files_are_served_so_they_cannot_run_as_our_page(
    client_staff, handbook
):
    document = handbook.documents.first()
    response = client_staff.get(reverse("web:document-file", args=[document.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["X-Content-Type-Options"] == "nosniff"


# --- scope -------------------------------------------------------------------------------


def test_a_threads_scope_is_shown_and_changes_only_when_the_user_changes_it(
    client_staff, staff, handbook, readers
):
    notes = CollectionFactory(name="Notes", slug="notes")
    notes.reader_groups.add(readers)
    indexed_document(notes, "notes.md", "# Notes\n\nThe canteen opens at noon.\n")
    ask_htmx(client_staff, collections=[str(handbook.pk)])
    assert runner.wait_idle(30)
    first = last_message()
    thread = first.thread
    assert list(thread.collections.all()) == [handbook]
    page = client_staff.get(f"/ask/{thread.pk}/").content.decode()
    assert f'value="{handbook.pk}" checked' in page
    assert f'value="{notes.pk}" checked' not in page
    assert "Searched: Handbook" in page
    # A follow-up that keeps the ticks keeps the scope.
    ask_htmx(
        client_staff,
        "And the train class?",
        thread=str(thread.pk),
        collections=[str(handbook.pk)],
    )
    assert runner.wait_idle(30)
    assert list(thread.collections.all()) == [handbook]
    # Unticking everything means every readable collection, from now on.
    ask_htmx(client_staff, "When does the canteen open?", thread=str(thread.pk))
    assert runner.wait_idle(30)
    assert not thread.collections.exists()
    assert (
        "Searched all your collections"
        in client_staff.get(f"/ask/{thread.pk}/").content.decode()
    )


# --- feedback, threads ----------------------------------------------------------------------


def test_feedback_is_stored_with_the_message(client_staff, handbook):
    message = answered(client_staff)
    response = client_staff.post(
        reverse("web:message-feedback", args=[message.pk]),
        {"rating": "-1", "comment": "Wrong amount"},
        **HTMX,
    )
    assert "your feedback was saved" in response.content.decode()
    feedback = Feedback.objects.get(message=message)
    assert (feedback.rating, feedback.comment) == (-1, "Wrong amount")
    response = client_staff.post(
        reverse("web:message-feedback", args=[message.pk]), {"rating": "5"}, **HTMX
    )
    assert "Choose helpful or not helpful" in response.content.decode()
    assert Feedback.objects.get(message=message).rating == -1


def test_threads_are_listed_newest_first_searched_renamed_and_deleted(
    client_staff, staff, handbook
):
    old = Thread.objects.create(user=staff, title="Laptop rules")
    Message.objects.create(
        thread=old, question="How are laptops locked?", status="answered"
    )
    new = Thread.objects.create(user=staff, title="Meals")
    page = client_staff.get(reverse("web:threads")).content.decode()
    assert page.index("Meals") < page.index("Laptop rules")
    found = client_staff.get(reverse("web:threads"), {"q": "locked"}, **HTMX)
    assert "Laptop rules" in found.content.decode()
    assert "Meals" not in found.content.decode()
    client_staff.post(reverse("web:thread-rename", args=[new.pk]), {"title": "Food"})
    new.refresh_from_db()
    assert new.title == "Food"
    client_staff.post(reverse("web:thread-delete", args=[old.pk]))
    assert not Thread.objects.filter(pk=old.pk).exists()


def test_hostile_text_in_a_question_renders_inert(client_staff, handbook):
    payload = '<script>window.__pwned=1</script><img src=x onerror="__pwned=1">'
    response = ask_htmx(client_staff, payload + " meals refunded per day?")
    assert runner.wait_idle(30)
    for html in (
        response.content.decode(),
        client_staff.get(f"/ask/{last_message().thread_id}/").content.decode(),
    ):
        assert "<script>window.__pwned" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;" in html


def test_citations_are_recorded_as_they_are_released(client_staff, handbook):
    message = answered(client_staff)
    markers = sorted(
        Citation.objects.filter(message=message).values_list("marker", flat=True)
    )
    assert markers == sorted({int(n) for n in re.findall(r"\[(\d+)\]", message.answer)})


# --- T04: disabling a user ends their live answer and stream ------------------------------


def test_disabling_a_user_ends_their_stream_and_their_answer(
    client_staff, staff, handbook, slow_model, settings
):
    settings.ANSWER_HEARTBEAT_SECONDS = 1
    slow_model.chat.push(Reply("Meals [1]. " * 400, chunk_size=5, delay=0.02))
    ask_htmx(client_staff)
    message = last_message()
    read: list = []
    reader = threading.Thread(
        target=lambda: read.extend(stream(client_staff, message.pk))
    )
    reader.start()  # an open stream, then the user is disabled under it
    time.sleep(1)
    staff.is_active = False
    staff.save()
    reader.join(timeout=15)
    assert not reader.is_alive(), "the stream did not end"
    events = read
    assert events[-1][0] == "end"
    # Whichever noticed first: the writer (stopped) or the reader (signed out).
    assert "account was disabled" in events[-1][2] or "signed out" in events[-1][2]
    assert runner.wait_idle(30)
    message.refresh_from_db()
    assert message.status == Message.Status.INTERRUPTED
    assert "account was disabled" in message.status_reason


def test_a_pdf_opens_inline_as_a_pdf_and_downloads_sandboxed(client_staff, handbook):
    from django.core.files.base import ContentFile

    document = handbook.documents.first()
    document.content_type = "application/pdf"
    document.file.save("x", ContentFile(b"%PDF-1.4 not really"), save=True)
    url = reverse("web:document-file", args=[document.pk])
    view = client_staff.get(url)
    assert view["Content-Type"] == "application/pdf"
    assert view["Content-Disposition"].startswith("inline;")
    assert view["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in view["Content-Security-Policy"]
    download = client_staff.get(url, {"download": "1"})
    assert download["Content-Disposition"].startswith("attachment;")
    assert download["Content-Security-Policy"] == "sandbox"
    assert download["Content-Type"] == "application/octet-stream"
