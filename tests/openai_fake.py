"""The OpenAI HTTP edge, faked with respx at the transport the SDK really uses.

openai 3.x sends through httpx2/httpcore2, not httpx/httpcore, so respx's default
mocker never sees its requests. respx picks a mocker by name (`using=`); this one
patches httpcore2's connection classes the way respx's own `httpcore` mocker
patches httpcore's. Everything above the transport (SDK, retries, parsing) runs
for real, and an unmatched request fails instead of reaching a network.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator

import httpx
import respx
from django.test.utils import override_settings
from respx.mocks import HTTPCoreMocker

from ragapp.retrieval.quoting import DELIMITER_NAME
from tests.model_stub import error_body, sse


class HTTPCore2Mocker(HTTPCoreMocker):
    """Intercept httpcore2 the way respx intercepts httpcore."""

    name = "ragapp-httpcore2"
    targets = [
        "httpcore2._sync.connection.HTTPConnection",
        "httpcore2._sync.connection_pool.ConnectionPool",
        "httpcore2._sync.http_proxy.HTTPProxy",
        "httpcore2._async.connection.AsyncHTTPConnection",
        "httpcore2._async.connection_pool.AsyncConnectionPool",
        "httpcore2._async.http_proxy.AsyncHTTPProxy",
    ]


OPENAI_BASE_URL = "http://openai.test/v1"


FAKE_SETTINGS = {
    "OPENAI_API_KEY": "sk-test",
    "OPENAI_BASE_URL": OPENAI_BASE_URL,
    "MODEL_TIMEOUT_SECONDS": 5.0,
}


def fake_openai(settings) -> Iterator[respx.Router]:
    """Point the settings at a fake OpenAI API and yield its respx router."""
    for name, value in FAKE_SETTINGS.items():
        setattr(settings, name, value)
    with respx.mock(using=HTTPCore2Mocker.name, base_url=OPENAI_BASE_URL) as router:
        yield router


@contextlib.contextmanager
def fake_openai_here() -> Iterator[respx.Router]:
    """The same fake, for code that has no `settings` fixture (module-wide data)."""
    with (
        override_settings(**FAKE_SETTINGS),
        respx.mock(
            using=HTTPCore2Mocker.name,
            base_url=OPENAI_BASE_URL,
            assert_all_called=False,
        ) as router,
    ):
        yield router


# Passages as ragapp quotes them to a model: <tag number="N" ...>\ntext\n</tag>,
# the tag carrying the request's token (ragapp.retrieval.quoting).
PASSAGE_BLOCK = re.compile(
    rf"<({DELIMITER_NAME}-[0-9a-f]{{12}}) number=\"(\d+)\"[^>]*>\n(.*?)\n</\1>", re.S
)


def quoted_passages(request: httpx.Request) -> dict[int, str]:
    """{number: text} of the passages quoted in a chat request's last message."""
    content = json.loads(request.content)["messages"][-1]["content"]
    return {int(n): text for _tag, n, text in PASSAGE_BLOCK.findall(content)}


# --- chat completion bodies, by hand ---------------------------------------------


def chunk(delta: dict | None = None, finish_reason=None, *, choices=True) -> bytes:
    data: dict = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "chat-primary",
        "choices": [
            {
                "index": 0,
                "delta": delta or {},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ]
        if choices
        else [],
        "usage": None,
    }
    return sse(data)


def usage_chunk(prompt: int, completion: int) -> bytes:
    return sse(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "chat-primary",
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    )


DONE = b"data: [DONE]\n\n"
ROLE = chunk({"role": "assistant", "content": ""})


def text_body(*pieces: str, usage=(12, 3)) -> bytes:
    body = ROLE + b"".join(chunk({"content": piece}) for piece in pieces)
    body += chunk({}, "stop")
    if usage:
        body += usage_chunk(*usage)
    return body + DONE


def event_stream(body: bytes) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body
    )


def status(code: int, *, headers=None, code_name=None) -> httpx.Response:
    return httpx.Response(
        code,
        headers=headers or {},
        json=error_body("The server had an error", code=code_name),
    )


def grades_answer(grades: list[dict], *, pieces: int = 3) -> httpx.Response:
    """Stream the JSON of `grades` in a few pieces, then the end and usage."""
    text = json.dumps({"grades": grades})
    size = max(1, len(text) // pieces)
    body = ROLE + b"".join(
        chunk({"content": text[i : i + size]}) for i in range(0, len(text), size)
    )
    body += chunk({}, "stop") + usage_chunk(900, 40) + DONE
    return event_stream(body)


def grading_model(rule):
    """A fake model for the model rerank: grades each passage sent with `rule(text)`."""

    def respond(request: httpx.Request) -> httpx.Response:
        passages = quoted_passages(request)
        return grades_answer(
            [{"passage": n, "relevance": rule(text)} for n, text in passages.items()]
        )

    return respond
