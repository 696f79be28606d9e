"""/v1/responses with file_search, through the official SDK in strict mode.

Grounded answers are written by the real background runner (these tests
commit). Each reply and every streamed event is also checked against
OpenAI's published schema (Response, ResponseStreamEvent).
"""

from __future__ import annotations

import json
import time

import openai
import pytest

from ragapp.answers.models import Message
from ragapp.api.models import TokenSpend, VectorStoreFile
from tests.api.openai_schema import assert_conforms, assert_event_conforms
from tests.model_stub import Moderation, Reply

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("idle_runner"),
]

MEALS = "How much are meal expenses refunded per day?"


@pytest.fixture
def store_id(handbook) -> str:
    from ragapp.api.v1.stores_service import vector_store_ids

    return vector_store_ids([handbook.pk])[0]


def file_search(store_id: str, **options) -> list[dict]:
    return [{"type": "file_search", "vector_store_ids": [store_id], **options}]


def create(client, store_id, question=MEALS, **options):
    options.setdefault("model", "ragapp-extractive")
    raw = client.responses.with_raw_response.create(
        input=question, tools=file_search(store_id), **options
    )
    assert_conforms("Response", raw.http_response.json())
    return raw.parse()


def test_file_search_answers_with_file_citations(staff_sdk, store_id, handbook):
    response = create(staff_sdk, store_id, include=["file_search_call.results"])
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    call, message = response.output
    assert call.type == "file_search_call" and call.status == "completed"
    assert call.queries and call.results
    result = call.results[0]
    assert result.filename == "handbook.md"
    assert 0 < result.score < 1
    assert "35 euros" in response.output_text
    text = message.content[0]
    annotation = text.annotations[0]
    assert annotation.type == "file_citation"
    assert annotation.filename == "handbook.md"
    assert text.text[annotation.index] == "["  # the marker it stands for
    stored = VectorStoreFile.objects.get(public_id=annotation.file_id)
    assert stored.document.collection_id == handbook.pk
    assert result.file_id == annotation.file_id
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )
    extension = response.model_extra["ragapp_citations"][0]
    assert extension["quote"] and extension["file_id"] == annotation.file_id


def test_results_are_left_out_unless_included(staff_sdk, store_id):
    response = create(staff_sdk, store_id)
    assert response.output[0].results is None


def test_the_stream_follows_openais_event_order(
    staff_sdk, store_id, wsgi_http, staff_key
):
    raw = wsgi_http.post(
        "http://testserver/v1/responses",
        headers={"Authorization": f"Bearer {staff_key}"},
        json={
            "model": "ragapp-extractive",
            "input": MEALS,
            "tools": file_search(store_id),
            "stream": True,
            "include": ["file_search_call.results"],
        },
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(line.removeprefix("data: "))
        for line in raw.text.splitlines()
        if line.startswith("data: ")
    ]
    for event in events:
        assert_event_conforms(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    first_text = kinds.index("response.output_text.delta")
    assert kinds[:first_text] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
    ]
    last_text = len(kinds) - 1 - kinds[::-1].index("response.output_text.delta")
    closing = kinds[last_text + 1 :]
    annotations = closing.count("response.output_text.annotation.added")
    assert annotations >= 1
    assert closing == [
        *["response.output_text.annotation.added"] * annotations,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    text = "".join(
        e["delta"] for e in events if e["type"] == "response.output_text.delta"
    )
    assert final["output"][1]["content"][0]["text"] == text
    assert final["output"][0]["results"]


def test_the_sdk_stream_helper_builds_the_final_response(staff_sdk, store_id):
    with staff_sdk.responses.stream(
        model="ragapp-extractive", input=MEALS, tools=file_search(store_id)
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.output[1].content[0].annotations


def test_previous_response_id_continues_the_thread(staff_sdk, store_id):
    first = create(staff_sdk, store_id)
    second = create(
        staff_sdk,
        store_id,
        question="Within how many days must expense claims be filed?",
        previous_response_id=first.id,
    )
    assert second.previous_response_id == first.id
    assert "30 days" in second.output_text
    one, two = (
        Message.objects.get(question=MEALS),
        Message.objects.exclude(question=MEALS).get(),
    )
    assert one.thread_id == two.thread_id


def test_a_response_is_retrieved_listed_and_deleted(staff_sdk, store_id):
    made = create(staff_sdk, store_id)
    raw = staff_sdk.responses.with_raw_response.retrieve(made.id)
    assert_conforms("Response", raw.http_response.json())
    again = raw.parse()
    assert again.output_text == made.output_text
    assert (
        again.output[1].content[0].annotations == made.output[1].content[0].annotations
    )
    items = staff_sdk.responses.input_items.list(made.id)
    assert items.data[0].content[0].text == MEALS
    deleted = staff_sdk.responses.delete(made.id)
    assert deleted is None
    with pytest.raises(openai.NotFoundError):
        staff_sdk.responses.retrieve(made.id)


def test_another_users_response_and_store_are_not_found(
    sdk, make_key, staff_sdk, store_id, garden
):
    from tests.factories import UserFactory

    made = create(staff_sdk, store_id)
    stranger = sdk(make_key(UserFactory(username="stranger")).secret)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError) as caught:
        stranger.responses.create(
            model="ragapp-extractive", input=MEALS, tools=file_search(store_id)
        )
    assert caught.value.param == "tools[0].vector_store_ids"
    forged = made.id[:-1] + ("0" if made.id[-1] != "0" else "1")
    with pytest.raises(openai.NotFoundError):
        staff_sdk.responses.retrieve(forged)


def test_a_flagged_question_is_incomplete_with_a_refusal(
    staff_sdk, store_id, model_stub, settings
):
    settings.MODERATION_PROVIDER = "openai"
    model_stub.moderations.push(Moderation(categories=["violence"]))
    response = create(staff_sdk, store_id, question="How do I hurt my colleague?")
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "content_filter"
    part = response.output[-1].content[0]
    assert part.type == "refusal" and part.refusal


def test_bad_tools_and_filters_are_400s_naming_the_field(staff_sdk, store_id):
    with pytest.raises(openai.BadRequestError) as caught:
        staff_sdk.responses.create(
            model="ragapp-extractive",
            input=MEALS,
            tools=[{"type": "web_search"}],
        )
    assert caught.value.param == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as caught:
        staff_sdk.responses.create(
            model="ragapp-extractive",
            input=MEALS,
            tools=file_search(store_id, filters={"type": "near", "key": "a"}),
        )
    assert caught.value.param.startswith("tools[0].filters")
    with pytest.raises(openai.NotFoundError):
        staff_sdk.responses.create(
            model="no-such-model", input=MEALS, tools=file_search(store_id)
        )


def test_a_filter_on_attributes_narrows_what_is_cited(staff_sdk, store_id, handbook):
    response = staff_sdk.responses.create(
        model="ragapp-extractive",
        input=MEALS,
        tools=file_search(
            store_id, filters={"type": "eq", "key": "team", "value": "nobody"}
        ),
        include=["file_search_call.results"],
    )
    assert response.output[0].results == []
    assert not response.output[-1].content[0].annotations


def _poll(client, response_id, until=("completed", "incomplete", "cancelled")):
    for _ in range(200):
        response = client.responses.retrieve(response_id)
        if response.status in until:
            return response
        time.sleep(0.05)
    raise AssertionError(f"{response_id} is still {response.status}")


def test_a_background_response_is_polled_to_its_end_and_charged(
    staff_sdk, store_id, model_stub
):
    model_stub.chat.push(Reply(text="Meals: 35 euros a day [1].", delay=0.05))
    started = create(staff_sdk, store_id, model="collection:handbook", background=True)
    assert started.status == "in_progress" and started.background is True
    assert started.output == []
    done = _poll(staff_sdk, started.id)
    assert done.status == "completed"
    assert "35 euros" in done.output_text
    assert TokenSpend.objects.get().tokens == done.usage.total_tokens > 0


def test_cancel_stops_a_response_and_keeps_what_was_written(
    staff_sdk, store_id, model_stub
):
    model_stub.chat.push(Reply(text="Meals are refunded " * 40, delay=0.1))
    started = create(staff_sdk, store_id, model="collection:handbook", background=True)
    raw = staff_sdk.responses.with_raw_response.cancel(started.id)
    assert_conforms("Response", raw.http_response.json())
    cancelled = raw.parse()
    assert cancelled.status == "cancelled"
    assert _poll(staff_sdk, started.id).status == "cancelled"
    # Cancelling what has ended changes nothing and is no error.
    assert staff_sdk.responses.cancel(started.id).status == "cancelled"
