"""T21 (CI size): mutated PDFs through the real pipeline all end in a final state.

Seeds are PDFs made here plus the two small eval PDFs; a seeded mutator flips,
drops, repeats and truncates bytes (the kinds of damage zzuf does). Each
mutant is uploaded and ingested in this process with the real sandboxed
parser; none may crash the pipeline or be left half-done.
"""

from __future__ import annotations

import io
import random

import pytest

from ragapp.documents import ingestion, services
from ragapp.documents.models import Chunk, Document
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from tests.factories import CollectionFactory
from tests.files import nested_flate_bomb_pdf, text_pdf

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

FAST_MODEL = next(name for name in EMBEDDING_DIMENSIONS if "wordllama" in name)
MUTANTS_PER_SEED = 12


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Damage `data` the way fuzzers do: flips, drops, repeats, truncation."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(("flip", "flip", "drop", "repeat", "truncate", "zero"))
        if not buf:
            break
        at = rng.randrange(len(buf))
        if kind == "flip":
            for i in range(at, min(len(buf), at + rng.randint(1, 8))):
                buf[i] ^= 1 << rng.randrange(8)
        elif kind == "drop":
            del buf[at : at + rng.randint(1, 64)]
        elif kind == "repeat":
            piece = buf[at : at + rng.randint(1, 256)]
            buf[at:at] = piece * rng.randint(2, 20)
        elif kind == "truncate":
            del buf[max(at, 16) :]
        else:
            buf[at : at + rng.randint(1, 32)] = b"\x00" * rng.randint(1, 32)
    return bytes(buf)


def seeds(eval_dir_pdfs) -> list[bytes]:
    made = [
        text_pdf([["A short memo about the fire drill on Tuesday."]] * 3, title="Memo"),
        text_pdf([[f"Line {i} of page {p}." for i in range(30)] for p in range(5)]),
        nested_flate_bomb_pdf(2 * 1024 * 1024),
    ]
    real = []
    if eval_dir_pdfs is not None:
        real = [
            (eval_dir_pdfs / name).read_bytes()
            for name in ("cidr2021_paper17.pdf", "hf_transformers.pdf")
        ]
    return made + real


@pytest.fixture
def eval_dir_pdfs():
    from tests.conftest import eval_dir

    base = eval_dir()
    return base / "pdfs" if base else None


def test_mutated_pdfs_all_end_ready_or_failed_with_a_reason(
    settings, tmp_path, eval_dir_pdfs
):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PARSE_TIMEOUT_SECONDS = 30
    collection = CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )
    rng = random.Random(20261125)
    outcomes: dict[str, int] = {}
    for seed_index, seed in enumerate(seeds(eval_dir_pdfs)):
        for n in range(MUTANTS_PER_SEED):
            data = mutate(seed, rng)
            outcome = services.document_upload(
                collection=collection,
                stream=io.BytesIO(data),
                filename=f"mutant-{seed_index}-{n}.pdf",
            )
            if outcome.created and outcome.document.status == Document.Status.QUEUED:
                ingestion.document_ingest(document_id=outcome.document.pk)
            document = Document.objects.get(pk=outcome.document.pk)
            assert document.status in {Document.Status.READY, Document.Status.FAILED}
            if document.status == Document.Status.FAILED:
                assert document.error_code and document.error_message
                assert not Chunk.objects.filter(document=document).exists()
            else:
                assert not Chunk.objects.filter(
                    document=document, embedding__isnull=True
                ).exists()
            key = document.status if document.status == "ready" else document.error_code
            outcomes[key] = outcomes.get(key, 0) + 1
    assert sum(outcomes.values()) >= 3 * MUTANTS_PER_SEED
    print("mutant outcomes:", dict(sorted(outcomes.items())))
