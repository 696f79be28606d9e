"""Collections of documents, the documents themselves, and their indexed chunks."""

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from pgvector.django import HalfVectorField, HnswIndex, VectorField

from ragapp.providers.catalog import (
    INDEXED_DIMENSIONS,
    default_embedding_dimensions,
    default_embedding_model,
)


def document_upload_to(instance: "Document", filename: str) -> str:
    """Store every upload under a server-made name; the client's name is metadata.

    Names from clients carry `../`, NULs and worse (T17), so none of it reaches
    the filesystem.
    """
    return f"documents/{uuid.uuid4().hex}"


class Collection(models.Model):
    """A set of documents that the same groups may ask questions about."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    reader_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="readable_collections",
        verbose_name=_("reader groups"),
        help_text=_("Members of these groups may ask questions in this collection."),
    )
    embedding_model = models.CharField(
        _("embedding model"),
        max_length=200,
        default=default_embedding_model,
        help_text=_("Changing the model means re-indexing every document."),
    )
    embedding_dimensions = models.PositiveSmallIntegerField(
        _("embedding dimensions"), default=default_embedding_dimensions
    )
    # Sampling for answers asked in this collection alone; empty = the model's default.
    answer_temperature = models.FloatField(
        _("answer temperature"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
    )
    answer_top_p = models.FloatField(
        _("answer top_p"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
    )
    answer_max_tokens = models.PositiveIntegerField(
        _("answer max tokens"),
        null=True,
        blank=True,
        validators=[MinValueValidator(16), MaxValueValidator(32768)],
    )
    answer_seed = models.BigIntegerField(_("answer seed"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(embedding_dimensions__gt=0),
                name="collection_embedding_dimensions_positive",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def chat_options(self) -> dict:
        """The sampling settings this collection sets, as ChatOptions fields."""
        options = {
            "temperature": self.answer_temperature,
            "top_p": self.answer_top_p,
            "max_tokens": self.answer_max_tokens,
            "seed": self.answer_seed,
        }
        return {name: value for name, value in options.items() if value is not None}


class Document(models.Model):
    """One uploaded file and where its ingestion stands."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        PARSING = "parsing", _("Parsing")
        EMBEDDING = "embedding", _("Embedding")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    collection = models.ForeignKey(
        Collection, on_delete=models.CASCADE, related_name="documents"
    )
    title = models.CharField(_("title"), max_length=500)
    original_filename = models.CharField(
        _("original file name"),
        max_length=500,
        blank=True,
        help_text=_("As the uploader named it; shown escaped, never used as a path."),
    )
    file = models.FileField(
        _("file"),
        upload_to=document_upload_to,
        max_length=300,
        blank=True,
        help_text=_("Empty for uploads refused before they were stored."),
    )
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    content_type = models.CharField(_("content type"), max_length=200)
    size_bytes = models.PositiveBigIntegerField(_("size in bytes"))
    page_count = models.PositiveIntegerField(_("pages"), null=True, blank=True)
    attributes = models.JSONField(
        _("attributes"),
        default=dict,
        blank=True,
        help_text=_("Free-form key/value pairs, usable as retrieval filters."),
    )
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.QUEUED
    )
    status_changed_at = models.DateTimeField(default=timezone.now)
    error_code = models.CharField(_("error code"), max_length=50, blank=True)
    error_message = models.TextField(_("error"), blank=True)
    warnings = models.JSONField(
        _("warnings"),
        default=list,
        blank=True,
        help_text=_("Notes from parsing, e.g. pages without a text layer."),
    )
    progress_done = models.PositiveIntegerField(_("done"), default=0)
    progress_total = models.PositiveIntegerField(_("of"), default=0)
    # Claim of the worker processing the document. A claim is a lease, renewed
    # while work goes on: a killed worker's claim expires and the document is
    # taken up again; the token fences writes of a worker that lost its claim.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_by = models.CharField(max_length=200, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(
        default=0,
        editable=False,
        help_text=_("Claims that ended without a result, e.g. a killed worker."),
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    indexed_version = models.PositiveIntegerField(
        default=0,
        help_text=_("Chunk version that is searchable; 0 until first indexed."),
    )
    indexed_at = models.DateTimeField(null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "sha256"],
                name="document_unique_content_per_collection",
                condition=~models.Q(sha256=""),
                violation_error_message=_("This file is already in the collection."),
            ),
            # Half of what lets searches skip documents that are ready
            # (retrieval.search.searchable_chunks); the other half is that
            # the swap to ready deletes every other version's chunks.
            models.CheckConstraint(
                condition=~models.Q(status="ready") | models.Q(indexed_version__gt=0),
                name="document_ready_is_indexed",
            ),
        ]
        indexes = [
            models.Index(
                fields=["collection", "status"], name="document_collection_status"
            ),
            models.Index(
                fields=["status", "lease_expires_at"],
                name="document_pending_work",
                condition=models.Q(status__in=["queued", "parsing", "embedding"]),
            ),
            # The few documents whose chunks searches must check one by one.
            models.Index(
                fields=["id", "indexed_version"],
                name="document_not_ready",
                condition=~models.Q(status="ready"),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_processing(self) -> bool:
        """Whether the pipeline still has work to do on this document."""
        return self.status in {
            self.Status.QUEUED,
            self.Status.PARSING,
            self.Status.EMBEDDING,
        }


def _hnsw_index(dimensions: int) -> HnswIndex:
    # pgvector indexes only fixed-size vectors: one partial index per supported
    # dimension over the cast column, as pgvector's README advises for mixed sizes.
    return HnswIndex(
        OpClass(
            Cast("embedding", VectorField(dimensions=dimensions)),
            name="vector_cosine_ops",
        ),
        name=f"chunk_embedding_hnsw_{dimensions}",
        m=16,
        ef_construction=64,
        condition=models.Q(embedding_dimensions=dimensions),
    )


class Chunk(models.Model):
    """A passage of a document: the unit retrieved, embedded and cited.

    Chunks of a re-index are written beside the live ones under a new `version`
    and swapped in by moving `Document.indexed_version`, so searches never see
    half a document.
    """

    document = models.ForeignKey(
        Document, on_delete=models.CASCADE, related_name="chunks"
    )
    # Denormalised from the document so the access filter and vector search run
    # on this table alone.
    collection = models.ForeignKey(
        Collection, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    version = models.PositiveIntegerField(default=1)
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    heading = models.CharField(max_length=500, blank=True)
    token_count = models.PositiveIntegerField()
    page_start = models.PositiveIntegerField(null=True, blank=True)
    page_end = models.PositiveIntegerField(null=True, blank=True)
    embedding = VectorField(null=True, blank=True)
    # Derived by PostgreSQL so it can never disagree with the vector it indexes.
    embedding_dimensions = models.GeneratedField(
        expression=models.Func("embedding", function="vector_dims"),
        output_field=models.PositiveSmallIntegerField(),
        db_persist=True,
    )
    # The lexical field: heading and text, so a passage deep in a section still
    # matches on its section's (or abstract's) title. PostgreSQL derives it,
    # and its length in terms, so BM25 statistics can never disagree with it.
    # It carries no weights: BM25 (retrieval/lexical.py) uses weight A as a
    # marker for the query's terms.
    search_vector = models.GeneratedField(
        expression=SearchVector("heading", "text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    search_length = models.GeneratedField(
        expression=models.Func(
            SearchVector("heading", "text", config="english"),
            function="ragapp_tsvector_length",
        ),
        output_field=models.PositiveIntegerField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["document", "version", "ordinal"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "version", "ordinal"],
                name="chunk_unique_position",
            ),
            models.CheckConstraint(
                condition=models.Q(page_end__gte=models.F("page_start")),
                name="chunk_page_range_ordered",
            ),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="chunk_search_vector_gin"),
            models.Index(
                fields=["collection", "document"], name="chunk_collection_document"
            ),
            *(_hnsw_index(d) for d in INDEXED_DIMENSIONS),
        ]

    def __str__(self) -> str:
        return f"{self.document} #{self.ordinal}"


class ChunkSentence(models.Model):
    """A sentence of a chunk, embedded on its own at indexing time.

    A chunk's vector averages all its sentences, so a passage whose one
    sentence answers a question competes with its own filler. Searches score
    a candidate passage by its best sentence too (retrieval/search.py), which
    lifted SciFact nDCG@10 (docs/BENCHMARKS.md); kept vectors make that a
    lookup instead of embeddings at query time. Half precision: the score
    only compares, and it halves the table.
    """

    # The unique constraint's index leads with the chunk; no second index.
    chunk = models.ForeignKey(
        Chunk, on_delete=models.CASCADE, related_name="sentences", db_index=False
    )
    ordinal = models.PositiveSmallIntegerField()
    # Where the sentence lies in the chunk's whitespace-normalised text.
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    embedding = HalfVectorField()

    class Meta:
        ordering = ["chunk", "ordinal"]
        constraints = [
            models.UniqueConstraint(
                fields=["chunk", "ordinal"], name="chunk_sentence_unique_position"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.chunk} sentence {self.ordinal}"
