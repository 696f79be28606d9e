"""The OpenAI-compatible API on the live server (uvicorn, ASGI), official SDK.

In-process tests (tests/api) go through WSGI, which buffers a streamed
reply whole; here the stream crosses a real socket, so these check that
chunks leave as they are made and that the SDK's stream parser reads them.
"""

from __future__ import annotations

import time

import openai
import pytest

from ragapp.answers.models import Message
from ragapp.api.keys import apikey_create
from ragapp.api.models import TokenSpend
from tests.answers.conftest import HANDBOOK
from tests.factories import CollectionFactory, indexed_document
from tests.model_stub import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_app, make_user, staff_group):
    collection = CollectionFactory(name="Handbook", slug="handbook")
    collection.reader_groups.add(staff_group)
    indexed_document(collection, "handbook.md", HANDBOOK)
    key = apikey_create(user=make_user("staff"), name="live").secret
    return openai.OpenAI(
        api_key=key,
        base_url=f"{live_app.url}/v1",
        max_retries=0,
        _strict_response_validation=True,
    )


@pytest.fixture
def model(model_stub_server):
    model_stub_server.reset()
    yield model_stub_server
    model_stub_server.reset()


def test_chunks_arrive_while_the_answer_is_written(client, model):
    # The first window is released after moderation, then the rest comes
    # 0.4 s a piece: a buffered reply would deliver every chunk at once.
    words = "Meals are refunded up to 35 euros a day with receipts, as the policy says [1]. "
    model.chat.push(Reply(text=words * 3, chunk_size=40, delay=0.4))
    arrivals = []
    stream = client.chat.completions.create(
        model="collection:handbook",
        messages=[{"role": "user", "content": "How much are meals refunded?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
        last = chunk
    assert last.choices == [] and last.usage.total_tokens > 0
    assert len(arrivals) >= 2
    assert arrivals[-1] - arrivals[0] > 0.4


def test_the_passthrough_model_streams_over_asgi(client, model):
    model.chat.push(Reply(text="Hello from the model.", chunk_size=5))
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="stub-model",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        if chunk.choices
    )
    assert text == "Hello from the model."


def test_a_stream_the_client_left_is_still_charged(client, model):
    """T37: hanging up before the end does not dodge the key's budget."""
    model.chat.push(Reply(text="Meals are refunded " * 30, chunk_size=20, delay=0.2))
    with client.chat.completions.create(
        model="collection:handbook",
        messages=[{"role": "user", "content": "How much are meals refunded?"}],
        stream=True,
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break  # the first words, then hang up
    for _ in range(300):
        message = Message.objects.get()
        spent = TokenSpend.objects.first()
        if message.finished_at and spent:
            break
        time.sleep(0.1)
    assert spent is not None, "the answer was never charged"
    assert spent.tokens == message.prompt_tokens + message.completion_tokens > 0
