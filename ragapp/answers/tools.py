"""The one tool a model may call while answering: search the asker's documents.

A tool call is model output, so it is untrusted (T14): only the allow-listed
tool runs, with bounded arguments, as the asking user, in the question's own
scope and filters. A model cannot widen what is searched, whatever it asks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from django.conf import settings

from ragapp.answers import prompts
from ragapp.answers.recording import passage_trace
from ragapp.providers.base import ToolCall
from ragapp.retrieval.lexical import clean_query
from ragapp.retrieval.search import Passage

logger = logging.getLogger(__name__)

SEARCH_TOOL_NAME = "search_documents"
# The only tool a model is ever offered (T14 pins this list).
ALLOWED_TOOLS = (SEARCH_TOOL_NAME,)
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": SEARCH_TOOL_NAME,
        "description": (
            "Search the organisation's documents the user may read. Returns "
            "numbered passages to cite."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "What to search for, in a few words.",
                }
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    },
}
MAX_TOOL_QUERY_CHARS = 500
MAX_TOOL_CALLS_PER_STEP = 4


def assistant_tool_message(written: str, calls: list[ToolCall]) -> dict:
    """The assistant turn that asked for `calls`, as the chat format records it."""
    return {
        "role": "assistant",
        "content": written or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in calls
        ],
    }


def _refusal(call: ToolCall, *, allowed: bool) -> tuple[str, str]:
    """Why `call` may not run (empty if it may), and its query."""
    if call.name not in ALLOWED_TOOLS:
        return "unknown tool", ""
    if not allowed:
        return "too many tool calls in one step", ""
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        arguments = None
    query = arguments.get("query") if isinstance(arguments, dict) else None
    if not isinstance(query, str) or not query.strip():
        return "arguments must be a JSON object with a query string", ""
    if len(query) > MAX_TOOL_QUERY_CHARS:
        return f"query longer than {MAX_TOOL_QUERY_CHARS} characters", ""
    return "", query


def search_tool_run(
    call: ToolCall,
    *,
    search: Callable[[str], list[Passage]],
    passages: list[prompts.NumberedPassage],
    trace: dict,
    delimiter: str,
    allowed: bool,
    message_id: int,
) -> str:
    """Run one tool call, or refuse it and log why; return the tool's reply.

    `search` is the question's own search (same user, scope and filters);
    passages it finds that are new join `passages` under the next numbers,
    so the model can cite them.
    """
    record = {"name": call.name[:100], "arguments": call.arguments[:300]}
    trace.setdefault("tool_calls", []).append(record)
    refusal, query = _refusal(call, allowed=allowed)
    if refusal:
        record["status"] = "refused: " + refusal
        logger.warning(
            "Refused tool call %r in message %s: %s",
            call.name[:100],
            message_id,
            refusal,
        )
        return f"Error: {refusal}. The only tool is {SEARCH_TOOL_NAME}(query)."
    known = {item.passage.chunk_id for item in passages}
    fresh = [p for p in search(clean_query(query)) if p.chunk_id not in known]
    added = prompts.fit_passages(
        fresh,
        budget_tokens=settings.ANSWER_CONTEXT_TOKENS // 2,
        first_number=len(passages) + 1,
    )
    passages.extend(added)
    trace.setdefault("passages", []).extend(passage_trace(p) for p in added)
    record["status"] = f"ran: {len(added)} passages"
    if not added:
        return "No further passages were found."
    return prompts.format_passages(added, delimiter=delimiter)
