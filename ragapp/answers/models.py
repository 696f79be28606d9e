"""Threads and the messages in them: what was asked, answered, cited and spent.

A message is recorded as soon as the question arrives and completed when the
answer ends, however it ends, so a refused question, a model outage or an
answer stopped by moderation leaves the same trail as a good answer. Citations
copy what they show (title, pages, quote): the record stays readable after the
document is re-indexed or deleted.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Thread(models.Model):
    """One conversation of one user; follow-up questions read its earlier turns."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="threads"
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    # The collections asked by default; empty means every collection the user
    # may read (checked again in every search, never trusted from here).
    collections = models.ManyToManyField(
        "documents.Collection", blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["user", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Thread {self.pk}"


class Message(models.Model):
    """One question and its answer, with everything needed to audit it."""

    class Status(models.TextChoices):
        ANSWERING = "answering", _("answering")
        ANSWERED = "answered", _("answered")
        NOT_FOUND = "not_found", _("not in the documents")
        REFUSED = "refused", _("question refused by moderation")
        STOPPED = "stopped", _("answer stopped by moderation")
        FAILED = "failed", _("failed")
        INTERRUPTED = "interrupted", _("cut off part-way")

    class Answerer(models.TextChoices):
        MODEL = "model", _("language model")
        EXTRACTIVE = "extractive", _("extractive (offline)")
        NONE = "none", _("none")

    thread = models.ForeignKey(
        Thread, on_delete=models.CASCADE, related_name="messages"
    )
    question = models.TextField(_("question"))
    # The question rewritten to stand alone ("and page 3?" → a full query).
    search_query = models.TextField(_("search query"), blank=True)
    answer = models.TextField(_("answer"), blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.ANSWERING
    )
    status_reason = models.TextField(_("why"), blank=True)
    answerer = models.CharField(
        max_length=20, choices=Answerer.choices, default=Answerer.NONE
    )
    model = models.CharField(_("model"), max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # True when the server sent no usage and the counts are tiktoken estimates.
    tokens_estimated = models.BooleanField(default=False)
    cost_usd = models.DecimalField(
        _("estimated cost (USD)"), max_digits=12, decimal_places=6, null=True
    )
    # What retrieval did: queries, scope, passages offered with their ranks.
    retrieval_trace = models.JSONField(default=dict, blank=True)
    question_check = models.ForeignKey(
        "moderation.ModerationCheck",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    answer_checks = models.ManyToManyField(
        "moderation.ModerationCheck", blank=True, related_name="+"
    )
    # An answer moderation stopped or could not check: its text and citations
    # are not kept, so it can never be shown again (fail closed).
    withheld = models.BooleanField(default=False)
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Renewed by the process writing the answer; an answer whose heartbeat
    # stopped (its process died) is ended by the sweep, never left answering.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(
                fields=["status", "heartbeat_at"],
                name="message_answering",
                condition=models.Q(status="answering"),
            )
        ]

    def __str__(self) -> str:
        return self.question[:80]


class Citation(models.Model):
    """A passage an answer cites by its marker, [1], [2]…"""

    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="citations"
    )
    marker = models.PositiveSmallIntegerField()
    chunk = models.ForeignKey(
        "documents.Chunk", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    document = models.ForeignKey(
        "documents.Document", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    document_title = models.CharField(max_length=500)
    page_start = models.PositiveIntegerField(null=True, blank=True)
    page_end = models.PositiveIntegerField(null=True, blank=True)
    quote = models.TextField()

    class Meta:
        ordering = ["marker"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "marker"], name="citation_marker_unique"
            )
        ]

    def __str__(self) -> str:
        return f"[{self.marker}] {self.document_title}"


class Feedback(models.Model):
    """What the asker thought of an answer: thumbs up or down, and why."""

    class Rating(models.IntegerChoices):
        UP = 1, _("helpful")
        DOWN = -1, _("not helpful")

    message = models.OneToOneField(
        Message, on_delete=models.CASCADE, related_name="feedback"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(_("comment"), blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on message {self.message_id}"


class ConversationRead(models.Model):
    """An admin opened someone else's conversation: who, whose, when.

    Admins may read staff conversations (to follow up feedback or a
    moderation event), and every such read leaves this row. No role may
    change or delete these rows through the product or the admin.
    """

    # Names are copied: the log outlives the thread and both accounts.
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reader_name = models.CharField(max_length=150)
    thread = models.ForeignKey(
        Thread, null=True, on_delete=models.SET_NULL, related_name="reads"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner_name = models.CharField(max_length=150)
    thread_title = models.CharField(max_length=200)
    read_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-read_at"]

    def __str__(self) -> str:
        return f"{self.reader} read thread {self.thread_id}"
