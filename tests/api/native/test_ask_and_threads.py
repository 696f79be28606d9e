"""POST /api/ask (whole and SSE), threads and feedback.

Answers are written by the real background runner on its own connection,
so these tests commit (transactional).
"""

from __future__ import annotations

import json

import pytest

from ragapp.answers.models import Feedback, Message, Thread
from ragapp.api.models import ApiRequest, TokenSpend
from tests.api.native.conftest import assert_error

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("idle_runner"),
]

MEALS = "How much are meal expenses refunded per day?"


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_a_whole_answer_cites_the_handbook_and_counts_its_tokens(staff_api, handbook):
    response = staff_api.post("/ask", json={"question": MEALS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "answered"
    assert "35 euros" in body["answer"]
    assert body["refusal"] is None
    [citation, *_] = body["citations"]
    assert citation["title"] and citation["quote"]
    assert {"document_id", "page_start", "page_end", "marker"} <= set(citation)
    assert f"[{citation['marker']}]" in body["answer"]
    message = Message.objects.get(pk=body["message_id"])
    assert message.thread_id == body["thread_id"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    if usage["total_tokens"]:
        assert TokenSpend.objects.get().tokens == usage["total_tokens"]
        assert (
            ApiRequest.objects.get(route__endswith="ask").tokens
            == usage["total_tokens"]
        )


def test_a_streamed_answer_sends_the_same_events_the_page_reads(staff_api, handbook):
    response = staff_api.post("/ask?stream=true", json={"question": MEALS})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    kinds = [kind for kind, _data in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert "delta" in kinds and "citation" in kinds
    streamed = "".join(data["text"] for kind, data in events if kind == "delta")
    finished = events[-1][1]
    assert finished["answer"] == streamed and finished["status"] == "answered"
    assert events[0][1]["message_id"] == finished["message_id"]
    cited = [data for kind, data in events if kind == "citation"]
    assert cited == finished["citations"]


def test_accept_event_stream_streams_too(staff_api, handbook):
    response = staff_api.post(
        "/ask", json={"question": MEALS}, headers={"Accept": "text/event-stream"}
    )
    assert sse_events(response.text)[-1][0] == "finished"


def test_a_flagged_question_is_a_clear_refusal_not_an_error(staff_api, handbook):
    response = staff_api.post(
        "/ask", json={"question": "I will kill you and your whole family tonight."}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "refused"
    assert body["answer"] == "" and body["citations"] == []
    assert "content check flagged" in body["refusal"]


def test_a_follow_up_continues_the_thread(staff_api, handbook):
    first = staff_api.post("/ask", json={"question": MEALS}).json()
    second = staff_api.post(
        "/ask",
        json={"question": "And within how many days?", "thread_id": first["thread_id"]},
    ).json()
    assert second["thread_id"] == first["thread_id"]
    assert second["status"] == "answered"
    thread = staff_api.get(f"/threads/{first['thread_id']}").json()
    assert [m["id"] for m in thread["messages"]] == [
        first["message_id"],
        second["message_id"],
    ]
    assert thread["messages"][0]["citations"] == first["citations"]


def test_asking_in_another_groups_collection_or_thread_is_a_404(
    staff_api, api, make_key, handbook, garden, boss
):
    error = assert_error(
        staff_api.post("/ask", json={"question": MEALS, "collection_ids": [garden.pk]}),
        404,
    )
    assert error["param"] == "collection_ids[0]"
    theirs = api(make_key(boss).secret).post("/ask", json={"question": MEALS}).json()
    error = assert_error(
        staff_api.post(
            "/ask", json={"question": MEALS, "thread_id": theirs["thread_id"]}
        ),
        404,
    )
    assert error["param"] == "thread_id"
    assert_error(staff_api.get(f"/threads/{theirs['thread_id']}"), 404)
    assert_error(
        staff_api.post(
            f"/messages/{theirs['message_id']}/feedback", json={"rating": "up"}
        ),
        404,
    )
    assert_error(staff_api.delete(f"/threads/{theirs['thread_id']}"), 404)
    assert Thread.objects.filter(pk=theirs["thread_id"]).exists()


def test_an_empty_question_is_a_400(staff_api, handbook):
    error = assert_error(staff_api.post("/ask", json={"question": "   "}), 400)
    assert error["param"] == "question"


def test_a_scoped_key_sees_only_the_threads_it_could_have_asked(
    api, make_key, staff, handbook, readers
):
    from tests.factories import CollectionFactory

    other = CollectionFactory(name="Other", slug="other")
    other.reader_groups.add(readers)
    everything = api(make_key(staff).secret)
    scoped = api(make_key(staff, collections=[handbook]).secret)
    wide = everything.post("/ask", json={"question": MEALS}).json()
    narrow = scoped.post("/ask", json={"question": MEALS}).json()
    assert narrow["citations"]
    listed = [t["id"] for t in scoped.get("/threads").json()["data"]]
    assert listed == [narrow["thread_id"]]
    assert_error(scoped.get(f"/threads/{wide['thread_id']}"), 404)
    both = [t["id"] for t in everything.get("/threads").json()["data"]]
    assert both == [narrow["thread_id"], wide["thread_id"]]
    assert everything.get(f"/threads/{narrow['thread_id']}").json()[
        "collection_ids"
    ] == [handbook.pk]


def test_threads_list_page_and_delete(staff_api, handbook):
    asked = [
        staff_api.post("/ask", json={"question": q}).json()
        for q in (MEALS, "Who approves first class travel?", "Where do laptops go?")
    ]
    first = staff_api.get("/threads", params={"limit": 2}).json()
    rest = staff_api.get(
        "/threads", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    ids = [t["id"] for t in first["data"] + rest["data"]]
    assert ids == [a["thread_id"] for a in reversed(asked)]
    assert rest["next_cursor"] is None
    assert staff_api.delete(f"/threads/{ids[0]}").status_code == 204
    assert not Thread.objects.filter(pk=ids[0]).exists()
    assert_error(staff_api.get(f"/threads/{ids[0]}"), 404)


def test_feedback_on_an_answer_is_recorded_and_shown(staff_api, handbook):
    answer = staff_api.post("/ask", json={"question": MEALS}).json()
    response = staff_api.post(
        f"/messages/{answer['message_id']}/feedback",
        json={"rating": "down", "comment": "Too short."},
    )
    assert response.status_code == 200, response.text
    assert response.json()["rating"] == "down"
    again = staff_api.post(
        f"/messages/{answer['message_id']}/feedback", json={"rating": "up"}
    )
    assert again.json()["comment"] == ""
    assert Feedback.objects.get().rating == Feedback.Rating.UP
    thread = staff_api.get(f"/threads/{answer['thread_id']}").json()
    assert thread["messages"][0]["feedback"]["rating"] == "up"
    assert_error(
        staff_api.post(
            f"/messages/{answer['message_id']}/feedback", json={"rating": "meh"}
        ),
        400,
    )


def test_a_read_only_key_asks_and_rates_but_does_not_delete(
    api, make_key, staff, handbook
):
    client = api(make_key(staff, read_only=True).secret)
    answer = client.post("/ask", json={"question": MEALS}).json()
    assert answer["status"] == "answered"
    rated = client.post(
        f"/messages/{answer['message_id']}/feedback", json={"rating": "up"}
    )
    assert rated.status_code == 200
    assert_error(client.delete(f"/threads/{answer['thread_id']}"), 403)
    assert Thread.objects.filter(pk=answer["thread_id"]).exists()
