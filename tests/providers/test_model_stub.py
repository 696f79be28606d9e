"""The hostile model stub speaks the OpenAI wire format exactly.

Each answer is read with the official SDK in strict mode
(`_strict_response_validation=True`), which checks every response against the
SDK's types, so a test that passes against the stub would pass against the
real API's shapes too.
"""

from __future__ import annotations

import json

import openai
import pytest

from ragapp.providers.base import MODERATION_CATEGORIES
from tests.model_stub import (
    STUB_API_KEY,
    Moderation,
    Raw,
    Reply,
    StallHeaders,
    Status,
    StubToolCall,
)


@pytest.fixture
def client(model_stub) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=STUB_API_KEY,
        base_url=model_stub.base_url,
        max_retries=0,
        timeout=2.0,
        _strict_response_validation=True,
    )


def test_stream_chunks_are_valid_chat_completion_chunks(client, model_stub):
    model_stub.chat.push(
        Reply("Hello there", chunk_size=4, tool_calls=[StubToolCall("f", '{"a": 1}')])
    )

    chunks = list(
        client.chat.completions.create(
            model="any-model",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert all(chunk.model == "any-model" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there"
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens > 0
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_without_include_usage_no_usage_is_sent(client, model_stub):
    chunks = list(
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )

    assert all(chunk.choices for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_non_streaming_answer_is_a_chat_completion(client, model_stub):
    model_stub.chat.push(Reply("Whole", tool_calls=[StubToolCall("f", "{}", id="c")]))

    completion = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )

    assert completion.choices[0].message.content == "Whole"
    assert completion.choices[0].message.tool_calls[0].id == "c"
    assert completion.usage.prompt_tokens > 0


def test_queue_is_consumed_in_order_then_the_default(client, model_stub):
    model_stub.chat.push(Reply("one"), Reply("two"))
    messages = [{"role": "user", "content": "hi"}]

    answers = [
        client.chat.completions.create(model="m", messages=messages)
        .choices[0]
        .message.content
        for _ in range(3)
    ]

    assert answers == ["one", "two", "The stub's answer."]
    assert model_stub.chat.pending == 0


def test_every_request_is_logged(client, model_stub):
    client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], temperature=0.5
    )
    client.moderations.create(input="hello")

    chat, moderation = model_stub.requests
    assert (chat.method, chat.path) == ("POST", "/v1/chat/completions")
    assert chat.headers["authorization"] == f"Bearer {STUB_API_KEY}"
    assert chat.body["temperature"] == 0.5
    assert moderation.path == "/v1/moderations"
    assert model_stub.chat.requests == [chat]
    assert model_stub.moderations.requests == [moderation]


def test_status_carries_the_error_shape_and_retry_after(client, model_stub):
    model_stub.chat.push(Status(429, code="rate_limit_exceeded", retry_after="7"))

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )

    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "7"


def test_unknown_paths_answer_404(client, model_stub):
    with pytest.raises(openai.NotFoundError):
        client.models.list()


# --- moderations ---------------------------------------------------------------------


def test_moderation_flags_the_scripted_categories(client, model_stub):
    model_stub.moderations.push(Moderation(categories=["violence", "hate"]))

    response = client.moderations.create(input=["one", "two"])

    assert len(response.results) == 2
    result = response.results[0]
    assert result.flagged is True
    categories = result.categories.model_dump(by_alias=True)
    assert set(categories) == set(MODERATION_CATEGORIES)
    assert {name for name, on in categories.items() if on} == {"violence", "hate"}
    assert result.category_scores.violence == pytest.approx(0.97)


def test_moderation_default_is_benign(client, model_stub):
    (result,) = client.moderations.create(input="hello").results

    assert result.flagged is False
    assert not any(result.categories.model_dump().values())


def test_moderation_server_error_and_stall(client, model_stub):
    model_stub.moderations.push(Status(503), StallHeaders())

    with pytest.raises(openai.InternalServerError):
        client.moderations.create(input="hello")
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).moderations.create(input="hello")


def test_moderation_malformed_json_reaches_the_client_as_it_is(client, model_stub):
    model_stub.moderations.push(Raw(b'{"id": "modr-1", "results": [{'))

    # The SDK lets the decoder's error through, not an openai.APIError: a
    # provider has to catch ValueError as well.
    with pytest.raises(json.JSONDecodeError):
        client.moderations.create(input="hello")
