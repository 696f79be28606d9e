"""What ragapp knows about embedding models before loading any of them.

A collection records its model and dimension at creation, so the dimension must
be known without importing a model runtime (or calling an API).
"""

from decimal import Decimal

from django.conf import settings

EMBEDDING_DIMENSIONS: dict[str, int] = {
    "local/all-MiniLM-L6-v2": 384,
    "local/wordllama-l2-supercat": 256,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}

# Longest input each model takes, in its own tokens: the local ones truncate past
# it (MiniLM was trained at 256 word-pieces), OpenAI's reject longer inputs. A
# chunker reads it without loading the model.
EMBEDDING_MAX_INPUT_TOKENS: dict[str, int] = {
    "local/all-MiniLM-L6-v2": 256,
    "local/wordllama-l2-supercat": 2048,
    "text-embedding-3-small": 8191,
    "text-embedding-3-large": 8191,
    "text-embedding-ada-002": 8191,
}
# A model ragapp does not know (one served by Ollama, vLLM...) gets a limit most
# embedding models accept.
UNKNOWN_MODEL_MAX_INPUT_TOKENS = 512

# Dimensions that have an HNSW index on chunk embeddings (migrations add one per
# entry); a model with another dimension still works, by exact search.
INDEXED_DIMENSIONS: tuple[int, ...] = (256, 384, 1536)


def default_embedding_model() -> str:
    """Return the embedding model new collections use."""
    return settings.EMBEDDING_MODEL


def embedding_dimensions(model: str) -> int:
    """Return the vector size of `model`, or raise ValueError naming it."""
    override = getattr(settings, "EMBEDDING_DIMENSIONS", None)
    if override and model == settings.EMBEDDING_MODEL:
        return override
    try:
        return EMBEDDING_DIMENSIONS[model]
    except KeyError:
        raise ValueError(
            f"Unknown embedding model {model!r}: set RAGAPP_EMBEDDING_DIMENSIONS "
            "to its vector size."
        ) from None


def default_embedding_dimensions() -> int:
    """Return the vector size of the default embedding model."""
    return embedding_dimensions(default_embedding_model())


def embedding_max_input_tokens(model: str) -> int:
    """Return the longest input `model` takes, in its own tokens."""
    return EMBEDDING_MAX_INPUT_TOKENS.get(model, UNKNOWN_MODEL_MAX_INPUT_TOKENS)


# Published prices in USD per million tokens (input, output), for the cost
# estimate recorded with each answer. A dated snapshot ("gpt-4o-mini-2024-07-18")
# is priced as its family; a model not listed (a LAN server) costs nothing known.
CHAT_PRICES_PER_MILLION: dict[str, tuple[str, str]] = {
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4.1-nano": ("0.10", "0.40"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-5-nano": ("0.05", "0.40"),
    "gpt-5-mini": ("0.25", "2.00"),
    "gpt-5": ("1.25", "10.00"),
}


def chat_cost_usd(
    model: str, prompt_tokens: int, completion_tokens: int
) -> Decimal | None:
    """Estimate what a chat call cost, or None for a model without a known price."""
    family = max(
        (
            name
            for name in CHAT_PRICES_PER_MILLION
            if model == name or model.startswith(name + "-")
        ),
        key=len,
        default=None,
    )
    if family is None:
        return None
    price_in, price_out = (Decimal(p) for p in CHAT_PRICES_PER_MILLION[family])
    return (prompt_tokens * price_in + completion_tokens * price_out) / Decimal(
        1_000_000
    )
