"""WordLlama l2_supercat, 256-d static embeddings: the fast offline model.

A static model averages one learned vector per token (Llama-2 tokenizer), so it
runs thousands of chunks a second on a CPU: for tests, CI and very large imports,
at lower retrieval quality than MiniLM. The package `wordllama` ships exactly one
model in its wheel, `l2_supercat` at 256 dimensions, with its tokenizer.

WordLlama looks in its package folder first, then in `cache_dir`, then downloads
from Hugging Face; pointing `cache_dir` at the package folder and passing
`disable_download=True` makes a missing file an error instead of a download.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ragapp.providers.exceptions import ProviderConfigurationError
from ragapp.providers.local._vectors import (
    LocalEmbedder,
    length_sorted_batches,
    unit_rows,
)

logger = logging.getLogger(__name__)

CONFIG_NAME = "l2_supercat"
DIMENSIONS = 256
# Beyond a few thousand tokens an average says little, and every padded row of a
# batch costs tokens x 256 floats: the cap bounds memory at about 70 MB a batch.
MAX_INPUT_TOKENS = 2048
DEFAULT_BATCH_SIZE = 32

_model: Any = None  # wordllama.WordLlamaInference
_model_pid: int | None = None
_load_lock = threading.Lock()


def _load() -> Any:
    try:
        import wordllama
    except ImportError as exc:
        raise ProviderConfigurationError(
            f"The fast local embedding model needs the {exc.name!r} package; "
            "install ragapp's dependencies again."
        ) from exc

    package_dir = Path(wordllama.__file__).resolve().parent
    try:
        model = wordllama.WordLlama.load(
            config=CONFIG_NAME,
            dim=DIMENSIONS,
            cache_dir=package_dir,
            disable_download=True,
        )
    except FileNotFoundError as exc:
        raise ProviderConfigurationError(
            "The wordllama package is missing its model files; reinstall it."
        ) from exc
    model.tokenizer.enable_truncation(max_length=MAX_INPUT_TOKENS)
    logger.info("Loaded WordLlama %s (%d-d)", CONFIG_NAME, DIMENSIONS)
    return model


def _get_model() -> Any:
    global _model, _model_pid
    if _model is not None and _model_pid == os.getpid():
        return _model
    with _load_lock:
        if _model is None or _model_pid != os.getpid():
            _model = _load()
            _model_pid = os.getpid()
        return _model


class WordLlamaEmbeddingProvider(LocalEmbedder):
    """Embed with WordLlama l2_supercat (256-d) in pure NumPy, with no network."""

    model = "local/wordllama-l2-supercat"
    dimensions = DIMENSIONS
    max_input_tokens = MAX_INPUT_TOKENS

    default_batch_size = DEFAULT_BATCH_SIZE

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = _get_model()
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        # Cheap length proxy: sorting by characters groups similar token counts.
        for positions in length_sorted_batches(
            [len(t) for t in texts], self.batch_size
        ):
            batch = [texts[i] for i in positions]
            # norm=False: the library divides by the norm with no floor, so a
            # degenerate row would become NaNs; unit_rows keeps it finite.
            vectors[positions] = model.embed(batch, norm=False, batch_size=len(batch))
        return unit_rows(vectors)
