"""`manage.py ingest`: bulk uploads from disk with a line per file."""

import io

import pytest
from django.core.management import CommandError, call_command

from ragapp.documents.models import Chunk, Document
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from tests.factories import CollectionFactory

pytestmark = pytest.mark.django_db

FAST_MODEL = next(name for name in EMBEDDING_DIMENSIONS if "wordllama" in name)


@pytest.fixture
def collection(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return CollectionFactory(
        slug="handbook",
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )


def test_a_directory_is_uploaded_and_indexed_here_with_now(collection, tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# Leave\n\nTwenty-five days a year.")
    (folder / "sub" / "b.txt").write_text("Parking is behind building C.")
    (folder / "tool.exe").write_bytes(b"MZ\x90\x00" + bytes(range(256)) * 4)
    out = io.StringIO()
    call_command("ingest", "handbook", str(folder), "--now", stdout=out)
    text = out.getvalue()
    assert f"3 files: 2 new, 0 already in {collection.name!r}, 1 refused." in text
    assert "tool.exe: refused or failed: The file is a program" in text
    assert Document.objects.filter(status="ready").count() == 2
    assert Chunk.objects.filter(text__contains="building C").exists()

    again = io.StringIO()
    call_command("ingest", "handbook", str(folder / "a.md"), stdout=again)
    assert "already in the collection" in again.getvalue()


def test_unknown_collection_and_missing_paths_are_explained(collection, tmp_path):
    with pytest.raises(CommandError, match="No collection with the slug 'nope'"):
        call_command("ingest", "nope", str(tmp_path))
    with pytest.raises(CommandError, match="neither a file nor a directory"):
        call_command("ingest", "handbook", str(tmp_path / "missing"))


def test_a_broker_that_is_down_costs_one_warning_line_not_a_traceback(
    monkeypatch, caplog
):
    """`ingest --now` with the app stopped: the upload's task cannot be sent."""
    import kombu.exceptions

    from ragapp.documents import tasks

    def unreachable(*args):
        raise kombu.exceptions.OperationalError("Error 2 connecting to redis.sock")

    monkeypatch.setattr(tasks.document_ingest_task, "delay", unreachable)
    tasks.enqueue(tasks.document_ingest_task, 7)
    (record,) = [r for r in caplog.records if "Could not send" in r.getMessage()]
    assert "document 7 now (Error 2 connecting" in record.getMessage()
    assert "the sweeper will" in record.getMessage()
    assert record.exc_info is None
