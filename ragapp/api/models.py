"""API keys, what they spend, the log of every API request, and OpenAI's
files and vector stores over collections.

A key is shown once and stored as its SHA-256 digest: the secret has 256 bits
from `secrets`, so a fast digest is as safe as a slow one and keeps every
request's lookup a single indexed read. Only a short prefix stays in clear,
for people to tell their keys apart.
"""

from __future__ import annotations

import secrets
import string
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ApiKey(models.Model):
    """A bearer credential of one user, narrowed by a scope and limits.

    A key never grants more than its user has: every request is checked as the
    user, and `collections` (empty = all the user may read) and `read_only`
    only take away.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    collections = models.ManyToManyField(
        "documents.Collection",
        blank=True,
        related_name="+",
        verbose_name=_("collections"),
        help_text=_("Leave empty for every collection the user may read."),
    )
    read_only = models.BooleanField(
        _("read-only"),
        default=False,
        help_text=_("May search and ask, but not upload, change or delete."),
    )
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    # Empty: the site-wide defaults (RAGAPP_API_REQUESTS_PER_MINUTE and
    # RAGAPP_API_MONTHLY_TOKENS).
    requests_per_minute = models.PositiveIntegerField(
        _("requests per minute"), null=True, blank=True
    )
    monthly_token_budget = models.PositiveBigIntegerField(
        _("monthly token budget"), null=True, blank=True
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API key")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > now
        )


class TokenSpend(models.Model):
    """Tokens one key spent in one calendar month (UTC), for budgets."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="spend")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    month = models.DateField()
    tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "month"], name="token_spend_month")
        ]
        indexes = [models.Index(fields=["user", "month"])]

    def __str__(self) -> str:
        return f"{self.key_id} {self.month:%Y-%m}: {self.tokens}"


class ApiRequest(models.Model):
    """One API request: who, which route, how it ended; no secrets, no text."""

    key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    request_id = models.CharField(max_length=40, db_index=True)
    method = models.CharField(max_length=10)
    route = models.CharField(max_length=200)
    status = models.PositiveSmallIntegerField()
    tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["key", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.method} {self.route} {self.status}"


# --- OpenAI's Files and Vector Stores over ragapp's collections ---------------------

_ID_ALPHABET = string.ascii_letters + string.digits


def _public_id(prefix: str) -> str:
    """An id as OpenAI shapes them: a prefix and 24 random letters and digits.

    Random rather than a row number, so an id tells nothing about how many
    files or stores exist, and a guessed one finds nothing.
    """
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def new_file_id() -> str:
    return _public_id("file-")


def new_vector_store_id() -> str:
    return _public_id("vs_")


def new_file_batch_id() -> str:
    return _public_id("vsfb_")


def api_file_upload_to(instance: ApiFile, filename: str) -> str:
    """Store every file under a server-made name; the client's name is metadata (T17)."""
    return f"api-files/{uuid.uuid4().hex}"


class ApiFile(models.Model):
    """A file uploaded through `POST /v1/files`, private to its uploader.

    Attaching it to a vector store copies its bytes into a new document of
    that collection, so deleting the file leaves the store's copy alone, as
    OpenAI's API does.
    """

    class Purpose(models.TextChoices):
        ASSISTANTS = "assistants", "assistants"
        BATCH = "batch", "batch"
        FINE_TUNE = "fine-tune", "fine-tune"
        VISION = "vision", "vision"
        USER_DATA = "user_data", "user_data"
        EVALS = "evals", "evals"

    public_id = models.CharField(
        max_length=40, unique=True, default=new_file_id, editable=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_files"
    )
    filename = models.CharField(
        _("file name"),
        max_length=255,
        help_text=_("As the client named it; shown escaped, never used as a path."),
    )
    purpose = models.CharField(_("purpose"), max_length=20, choices=Purpose.choices)
    bytes = models.PositiveBigIntegerField(_("size in bytes"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    file = models.FileField(upload_to=api_file_upload_to, max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="api_file_user_created")
        ]
        verbose_name = _("API file")

    def __str__(self) -> str:
        return f"{self.public_id} ({self.filename})"


class VectorStore(models.Model):
    """The OpenAI face of a collection: its `vs_` id and the fields OpenAI adds.

    Made when a store is created through the API, and on first sight for
    collections made elsewhere, so every collection a caller may read is a
    vector store with a stable id.
    """

    public_id = models.CharField(
        max_length=40, unique=True, default=new_vector_store_id, editable=False
    )
    collection = models.OneToOneField(
        "documents.Collection", on_delete=models.CASCADE, related_name="vector_store"
    )
    metadata = models.JSONField(default=dict, blank=True)
    # Kept and echoed; ragapp never expires a collection.
    expires_after = models.JSONField(null=True, blank=True)
    last_active_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.public_id


class VectorStoreFileBatch(models.Model):
    """Files attached to a store in one request, counted together."""

    public_id = models.CharField(
        max_length=40, unique=True, default=new_file_batch_id, editable=False
    )
    vector_store = models.ForeignKey(
        VectorStore, on_delete=models.CASCADE, related_name="batches"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Cancelling deletes the batch's documents still being indexed; these
    # count them, since their rows are gone with them.
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.public_id


class VectorStoreFile(models.Model):
    """One document of a collection under its OpenAI file id.

    Attached through the API, the id is the `ApiFile`'s; documents uploaded
    in the web pages get an id of their own on first sight.
    """

    public_id = models.CharField(max_length=40)
    vector_store = models.ForeignKey(
        VectorStore, on_delete=models.CASCADE, related_name="files"
    )
    document = models.OneToOneField(
        "documents.Document",
        on_delete=models.CASCADE,
        related_name="vector_store_file",
    )
    api_file = models.ForeignKey(
        ApiFile,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="vector_store_files",
    )
    batch = models.ForeignKey(
        VectorStoreFileBatch,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="files",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["vector_store", "public_id"], name="vector_store_file_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.vector_store_id}/{self.public_id}"


# --- The native API's idempotent writes -----------------------------------------------


class IdempotentRequest(models.Model):
    """A write sent with an `Idempotency-Key`, and the reply it got, for 24 hours.

    One row per key, route and Idempotency-Key: the same request sent again
    gets the stored reply instead of being done twice. `fingerprint` is a
    digest of what was sent (files' names and contents), so the same
    Idempotency-Key with another body is refused rather than answered with a
    reply to something else. `status` stays empty while the first request
    runs; a row left empty past its lease (a killed process) is taken over.
    """

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    route = models.CharField(max_length=300)
    idempotency_key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key", "route", "idempotency_key"],
                name="idempotent_request_once",
            )
        ]
        verbose_name = _("idempotent request")

    def __str__(self) -> str:
        return f"{self.route} [{self.idempotency_key}]"
