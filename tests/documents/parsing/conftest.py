"""Fixtures for the parser tests: where the real evaluation PDFs live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def _eval_pdf_dir() -> Path | None:
    candidates = [
        os.environ.get("RAGAPP_EVAL_PDFS", ""),
        str(REPO_ROOT.parent / "shared" / "eval" / "pdfs"),
        "/work/shared/eval/pdfs",
    ]
    for candidate in filter(None, candidates):
        path = Path(candidate)
        if (path / "SOURCE.md").is_file():
            return path
    return None


@pytest.fixture(scope="session")
def eval_pdfs() -> Path:
    """The five real PDFs of the evaluation set, read in place (never copied)."""
    path = _eval_pdf_dir()
    if path is None:
        pytest.skip("shared/eval/pdfs is not beside this checkout")
    return path
