"""/v1/chat/completions through the official SDK: grounded and passed through.

Grounded answers are written by the real background runner (so these tests
commit); the chat model is the hostile model stub speaking OpenAI's wire
format, including tool calls and moderation.
"""

from __future__ import annotations

import json

import openai
import pytest

from ragapp.api.exceptions import RateLimitedError
from ragapp.api.limits import StreamSlot
from ragapp.api.models import ApiRequest, TokenSpend
from tests.model_stub import Moderation, Reply, StubToolCall

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("idle_runner"),
]

MEALS = "How much are meal expenses refunded per day?"


def ask(client, model="collection:handbook", question=MEALS, **options):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], **options
    )


def test_an_extractive_answer_cites_the_handbook(staff_sdk, handbook):
    completion = ask(staff_sdk, model="ragapp-extractive")
    choice = completion.choices[0]
    assert completion.id.startswith("chatcmpl-")
    assert choice.finish_reason == "stop"
    assert "35 euros" in choice.message.content
    [annotation, *_] = choice.message.annotations
    assert annotation.type == "url_citation"
    marked = choice.message.content[
        annotation.url_citation.start_index : annotation.url_citation.end_index
    ]
    assert marked.startswith("[") and marked.endswith("]")
    assert "/ask/messages/" in annotation.url_citation.url
    extension = choice.message.model_extra["ragapp_citations"][0]
    assert extension["title"] == annotation.url_citation.title
    assert extension["quote"] and "page_start" in extension


def test_json_object_answers_are_one_object_with_the_citations(staff_sdk, handbook):
    whole = ask(staff_sdk, response_format={"type": "json_object"})
    body = json.loads(whole.choices[0].message.content)
    assert "35 euros" in body["answer"]
    [citation, *_] = body["citations"]
    assert f"[{citation['marker']}]" in body["answer"]
    assert citation["quote"] and citation["url"] and citation["filename"]
    assert whole.choices[0].message.annotations == []

    chunks = list(ask(staff_sdk, response_format={"type": "json_object"}, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(streamed)["answer"] == body["answer"]


def test_tools_and_json_schema_on_a_collection_are_400s(staff_sdk, handbook):
    schema = {"name": "x", "schema": {"type": "object"}}
    with pytest.raises(openai.BadRequestError) as caught:
        ask(staff_sdk, response_format={"type": "json_schema", "json_schema": schema})
    assert caught.value.param == "response_format"
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    with pytest.raises(openai.BadRequestError) as caught:
        ask(staff_sdk, tools=[tool])
    assert caught.value.param == "tools"


def test_a_collection_model_answers_with_the_chat_model(
    staff_sdk, handbook, model_stub
):
    model_stub.chat.push(Reply(text="Meals are refunded up to 35 euros a day [1]."))
    completion = ask(staff_sdk)
    message = completion.choices[0].message
    assert message.content == "Meals are refunded up to 35 euros a day [1]."
    assert message.annotations[0].url_citation.url.startswith("http://testserver/ask/")
    assert completion.usage.total_tokens > 0


def test_a_streamed_answer_keeps_one_id_and_ends_with_usage_and_done(
    staff_sdk, handbook, staff_key, wsgi_http
):
    chunks = list(
        ask(
            staff_sdk,
            model="ragapp-extractive",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert all(chunk.usage is None for chunk in chunks[:-1])
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["stop"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "35 euros" in text
    raw = wsgi_http.post(
        "http://testserver/v1/chat/completions",
        headers={"Authorization": f"Bearer {staff_key}"},
        json={
            "model": "ragapp-extractive",
            "stream": True,
            "messages": [{"role": "user", "content": MEALS}],
        },
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")
    assert '"usage"' not in raw.text  # not asked for: no usage at all


def test_a_flagged_question_ends_with_content_filter(
    staff_sdk, handbook, model_stub, settings
):
    settings.MODERATION_PROVIDER = "openai"
    model_stub.moderations.push(Moderation(categories=["violence"]))
    completion = ask(staff_sdk, question="How do I hurt my colleague?")
    choice = completion.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content is None
    assert choice.message.refusal


def test_a_flagged_answer_of_the_chat_model_is_withheld(
    staff_sdk, model_stub, settings, db
):
    settings.MODERATION_PROVIDER = "openai"
    model_stub.moderations.push(Moderation(), Moderation(categories=["violence"]))
    model_stub.chat.push(Reply(text="Something violent enough to be flagged."))
    chunks = list(
        staff_sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "violent" not in text
    assert chunks[-1].choices[0].finish_reason == "content_filter"


def test_the_chat_model_is_passed_through_with_tool_calls(staff_sdk, model_stub, db):
    model_stub.chat.push(
        Reply(
            text="",
            tool_calls=[StubToolCall(name="get_weather", arguments='{"city": "Oslo"}')],
        )
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                },
            },
        }
    ]
    completion = staff_sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=tools,
        tool_choice="auto",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    sent = model_stub.requests[-1].body
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "auto"


def test_streamed_tool_calls_carry_their_index(staff_sdk, model_stub, db):
    model_stub.chat.push(
        Reply(
            text="",
            tool_calls=[
                StubToolCall(name="a", arguments='{"x": 1}'),
                StubToolCall(name="b", arguments='{"y": 2}'),
            ],
        )
    )
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("a", "b")
    ]
    with staff_sdk.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "go"}], tools=tools
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["a", "b"]
    assert json.loads(calls[1].function.arguments) == {"y": 2}


def test_max_tokens_is_clamped_to_the_cap(staff_sdk, model_stub, settings, db):
    settings.API_MAX_TOKENS = 100
    staff_sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=10**6,
    )
    sent = model_stub.requests[-1].body
    assert (sent.get("max_tokens") or sent.get("max_completion_tokens")) == 100


def test_an_oversized_prompt_is_refused(staff_sdk, settings, handbook):
    settings.API_MAX_PROMPT_CHARS = 1000
    with pytest.raises(openai.BadRequestError) as caught:
        ask(staff_sdk, question="x" * 2000)
    assert caught.value.code == "context_length_exceeded"


def test_n_above_one_and_logprobs_are_refused(staff_sdk, handbook):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(staff_sdk, n=8)
    assert caught.value.param == "n"
    with pytest.raises(openai.BadRequestError) as caught:
        ask(staff_sdk, logprobs=True)
    assert caught.value.param == "logprobs"


def test_an_unknown_model_is_not_found(staff_sdk, handbook, garden):
    with pytest.raises(openai.NotFoundError) as caught:
        ask(staff_sdk, model="collection:garden")
    assert caught.value.param == "model"


def test_tokens_are_counted_against_the_key(staff_sdk, handbook, model_stub):
    model_stub.chat.push(Reply(text="Up to 35 euros a day [1]."))
    completion = ask(staff_sdk)
    assert TokenSpend.objects.get().tokens == completion.usage.total_tokens
    assert ApiRequest.objects.filter(route__contains="chat").get().tokens == (
        completion.usage.total_tokens
    )


def test_a_spent_budget_is_a_429_with_retry_after(sdk, make_key, staff, handbook):
    issued = make_key(staff, monthly_token_budget=1)
    client = sdk(issued.secret)
    ask(client, model="ragapp-extractive")
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, model="ragapp-extractive")
    assert caught.value.code == "insufficient_quota"
    assert int(caught.value.response.headers["retry-after"]) > 0


def test_a_key_past_its_concurrent_streams_gets_a_429(
    sdk, make_key, staff, handbook, settings
):
    """T37: the fifth stream of a key waits; the slot a finished stream held is free."""
    settings.API_MAX_STREAMS_PER_KEY = 4
    issued = make_key(staff)
    client = sdk(issued.secret)
    open_streams = [StreamSlot(issued.key) for _ in range(4)]
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, model="ragapp-extractive", stream=True)
    assert "streaming" in caught.value.message
    assert int(caught.value.response.headers["retry-after"]) > 0
    ask(client, model="ragapp-extractive")  # a whole answer needs no slot

    open_streams.pop().release()
    chunks = list(ask(client, model="ragapp-extractive", stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    # The stream gave its slot back: one more fits, and then no more.
    open_streams.append(StreamSlot(issued.key))
    with pytest.raises(RateLimitedError):
        StreamSlot(issued.key)
    for slot in open_streams:
        slot.release()


def test_rate_limits_answer_429_with_retry_after(sdk, make_key, staff, db):
    issued = make_key(staff, requests_per_minute=2)
    client = sdk(issued.secret)
    client.models.list()
    client.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        client.models.list()
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60


def test_a_disabled_users_key_stops_working(sdk, make_key, staff, db):
    issued = make_key(staff)
    client = sdk(issued.secret)
    client.models.list()
    staff.is_active = False
    staff.save()
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_errors_under_v1_never_leak_a_traceback(wsgi_http, staff_key, monkeypatch, db):
    from ragapp.api.v1 import models_routes

    def broken(caller):
        raise RuntimeError("/secret/path SELECT password")

    monkeypatch.setattr(models_routes, "model_catalog", broken)
    response = wsgi_http.get(
        "http://testserver/v1/models", headers={"Authorization": f"Bearer {staff_key}"}
    )
    assert response.status_code == 500
    body = response.text
    assert "secret" not in body and "Traceback" not in body
    assert response.headers["x-request-id"] in response.json()["error"]["message"]


def test_malformed_json_is_a_400(wsgi_http, staff_key, db):
    response = wsgi_http.post(
        "http://testserver/v1/chat/completions",
        headers={
            "Authorization": f"Bearer {staff_key}",
            "Content-Type": "application/json",
        },
        content=b"{not json",
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
