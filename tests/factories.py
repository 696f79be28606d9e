"""factory-boy factories for the models tests create most."""

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager

import factory
from django.contrib.auth import get_user_model

from ragapp.documents.models import Chunk, Collection, Document

TEST_PASSWORD = "correct horse battery staple 42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class CollectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Collection

    name = factory.Sequence(lambda n: f"Collection {n}")
    slug = factory.Sequence(lambda n: f"collection-{n}")


class DocumentFactory(factory.django.DjangoModelFactory):
    """A document row as the pipeline leaves it, without a stored file."""

    class Meta:
        model = Document

    collection = factory.SubFactory(CollectionFactory)
    title = factory.Sequence(lambda n: f"Document {n}")
    sha256 = factory.Sequence(
        lambda n: hashlib.sha256(f"document-{n}".encode()).hexdigest()
    )
    content_type = "text/plain"
    size_bytes = 1


class ChunkFactory(factory.django.DjangoModelFactory):
    """A passage of a document, in the document's collection."""

    class Meta:
        model = Chunk

    document = factory.SubFactory(DocumentFactory)
    collection = factory.SelfAttribute("document.collection")
    ordinal = factory.Sequence(lambda n: n)
    text = "x"
    token_count = factory.LazyAttribute(lambda chunk: len(chunk.text.split()))


@contextmanager
def tasks_run_here() -> Iterator[None]:
    """Run the Celery tasks sent meanwhile in this process (eager mode).

    A committed upload sends its ingest task; eagerly, the task runs here,
    so nothing is left on the test queue for a later worker to pick up.
    Failures propagate to the sender (which logs them) instead of vanishing
    into an unread result.
    """
    from ragapp.celery import app

    saved = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = saved


def indexed_document(
    collection: Collection,
    name: str,
    text: str,
    *,
    title: str = "",
    attributes: dict | None = None,
) -> Document:
    """Upload `text` as a file and index it in this process, through the real pipeline.

    Unlike DocumentFactory, the document goes through sniffing, the sandboxed
    parse, chunking, embedding and the version swap (which keeps the search
    statistics), so searches see it exactly as they would after a worker.
    Inside a test's transaction the upload's task is never sent (nothing
    commits); where it commits (module-wide data) the task runs here, eagerly,
    and the explicit ingest below finds the document already indexed.
    """
    from ragapp.documents import ingestion, services

    with tasks_run_here():
        outcome = services.document_upload(
            collection=collection,
            stream=io.BytesIO(text.encode()),
            filename=name,
            title=title,
            attributes=attributes,
        )
        ingestion.document_ingest(document_id=outcome.document.pk)
    return Document.objects.get(pk=outcome.document.pk)
