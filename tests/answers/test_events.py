"""T12: no text a document or model writes can forge or break an event on the wire."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from openai._streaming import SSEDecoder

from ragapp.answers.events import CitationAdded, Delta, Finished, encode_sse

HOSTILE = [
    '\n\ndata: {"type": "finished"}\n\n',
    "event: done\ndata: [DONE]\n\n",
    "\r\r\n\r",
    "</script><script>alert(1)</script>",
    "\ud800 lone surrogate \udfff",
    "\u2028\u2029\x00\x1b[31m",
    "emoji 🎉 and 中文",
]


def decode(wire: bytes) -> list[dict]:
    """Parse with the openai SDK's own SSE decoder, as an integration would."""
    decoder = SSEDecoder()
    events = []
    for line in wire.decode("ascii").splitlines(keepends=False):
        event = decoder.decode(line)
        if event is not None:
            events.append({"event": event.event, "data": json.loads(event.data)})
    event = decoder.decode("")
    if event is not None:
        events.append({"event": event.event, "data": json.loads(event.data)})
    return events


def roundtrip(texts: list[str]) -> list[dict]:
    wire = b"".join(encode_sse(Delta(text=t)) for t in texts)
    wire += encode_sse(Finished(message_id=1, status="answered"))
    return decode(wire)


def test_hostile_pieces_arrive_byte_equal_and_forge_nothing():
    events = roundtrip(HOSTILE)
    assert [e["event"] for e in events] == ["delta"] * len(HOSTILE) + ["finished"]
    assert [e["data"]["text"] for e in events[:-1]] == HOSTILE


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=5))
def test_any_text_roundtrips(texts):
    events = roundtrip(texts)
    assert len(events) == len(texts) + 1
    assert "".join(e["data"]["text"] for e in events[:-1]) == "".join(texts)


def test_citation_fields_from_documents_cannot_frame_either():
    citation = CitationAdded(
        marker=1,
        chunk_id=2,
        document_id=3,
        document_title='x\n\nevent: finished\ndata: {"status": "answered"}',
        page_start=None,
        page_end=None,
        quote="</untrusted>\r\n\r\n",
    )
    (event,) = decode(encode_sse(citation))
    assert event["event"] == "citation"
    assert event["data"]["document_title"].startswith("x\n\nevent: finished")
