"""Optional OCR for PDF pages without a text layer, with RapidOCR on ONNX Runtime.

Loaded only when a page needs it, so a text PDF never imports the model. The
models ship inside the `rapidocr` wheel (PP-OCRv6 small detection and
recognition, about 31 MB); their paths are passed explicitly, which keeps
RapidOCR from ever trying to download a model at run time.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import resource
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_DET_MODEL = "PP-OCRv6_det_small.onnx"
_REC_MODEL = "PP-OCRv6_rec_small.onnx"
_CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
# The detector's input side. Memory grows with its square: 1280 costs about
# 0.8 GB resident, 960 about 0.6 GB; 1280 still reads 9-point text on a
# 300 dpi Letter scan.
DETECTION_SIDE = 1280
# Pages are shrunk to this before they are kept for OCR, so what the model sees
# is bounded however large the PDF's image claims to be.
MAX_IMAGE_SIDE = 2000
_MIN_SCORE = 0.5

_engine: Any = None


def _model_dir() -> Path | None:
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "models"


def ocr_unavailable_reason() -> str | None:
    """Return why OCR cannot run here, or None when it can."""
    for module in ("rapidocr", "onnxruntime", "PIL", "numpy"):
        if importlib.util.find_spec(module) is None:
            return f"the OCR package {module!r} is not installed"
    models = _model_dir()
    for name in (_DET_MODEL, _REC_MODEL):
        if models is None or not (models / name).is_file():
            return f"the OCR model {name} is missing"
    return None


def shrink_for_ocr(image: Any) -> bytes:
    """Return a page image as grayscale PNG bytes, no side over MAX_IMAGE_SIDE.

    PNG keeps pending pages small in memory while the rest of the PDF is read;
    level 1 compresses fast and well enough for scanned text.
    """
    image = image.convert("L")
    image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def lift_memory_limit() -> None:
    """Raise the soft RLIMIT_AS to the hard one before loading the model.

    The isolated child sets the soft limit for parsing and the hard limit for
    OCR (ParseLimits.ocr_memory_bytes). By now every image has been decoded and
    shrunk under the soft limit, so the model only ever sees bounded input.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _get_engine() -> Any:
    global _engine  # one model per process: loading it costs about a second
    if _engine is None:
        from rapidocr import RapidOCR

        models = _model_dir()
        if models is None:
            raise RuntimeError("rapidocr is not installed")
        threads = max(1, min(2, os.cpu_count() or 1))
        _engine = RapidOCR(
            params={
                "Global.log_level": "error",
                "Global.use_cls": False,  # upright pages only; saves time and memory
                "Global.max_side_len": MAX_IMAGE_SIDE,
                "Det.limit_type": "max",
                "Det.limit_side_len": DETECTION_SIDE,
                "Det.model_path": str(models / _DET_MODEL),
                "Rec.model_path": str(models / _REC_MODEL),
                "Cls.model_path": str(models / _CLS_MODEL),
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )
    return _engine


def recognize(png: bytes) -> str:
    """Return the text read from one page image, lines in reading order."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        pixels = np.array(image.convert("RGB"))
    result = _get_engine()(pixels)
    texts = result.txts or ()
    scores = result.scores or (1.0,) * len(texts)
    return "\n".join(
        text.strip()
        for text, score in zip(texts, scores, strict=False)
        if text.strip() and score >= _MIN_SCORE
    )


def recognize_pages(
    pages: dict[int, list[bytes]], *, deadline: float
) -> tuple[dict[int, str], list[int]]:
    """OCR pages until `deadline` (time.monotonic()); return texts and pages left."""
    lift_memory_limit()
    texts: dict[int, str] = {}
    left: list[int] = []
    for number, images in sorted(pages.items()):
        if time.monotonic() > deadline:
            left.append(number)
            continue
        texts[number] = "\n".join(t for t in map(recognize, images) if t)
    return texts, left
