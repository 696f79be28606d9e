"""The record of every moderation verdict: what was checked, by what, and how."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

# Enough of the text for an admin to judge the verdict; the digest finds
# repeats of the same text without storing all of it.
EXCERPT_CHARS = 1000


class ModerationCheck(models.Model):
    """One screening of one text, kept whatever the outcome."""

    class Source(models.TextChoices):
        QUESTION = "question", _("question")
        ANSWER = "answer", _("answer")
        API = "api", _("API")

    class Status(models.TextChoices):
        OK = "ok", _("checked")
        UNAVAILABLE = "unavailable", _("check unavailable")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="moderation_checks",
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    flagged = models.BooleanField(default=False)
    # Category -> verdict after ragapp's thresholds; `flagged` counts only the
    # enforced categories (RAGAPP_MODERATION_CATEGORIES).
    categories = models.JSONField(default=dict, blank=True)
    category_scores = models.JSONField(default=dict, blank=True)
    provider = models.CharField(max_length=200)
    model = models.CharField(max_length=200, blank=True)
    text_excerpt = models.TextField(blank=True)
    text_sha256 = models.CharField(max_length=64)
    latency_ms = models.PositiveIntegerField()
    # Why no verdict could be had (status "unavailable"), for the operator.
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at"], name="moderation_created_idx"),
            models.Index(
                fields=["flagged", "-created_at"], name="moderation_flagged_idx"
            ),
        ]
        constraints = [
            # A check that could not run has no verdict to flag with.
            models.CheckConstraint(
                condition=~models.Q(status="unavailable", flagged=True),
                name="moderation_unavailable_not_flagged",
            ),
            models.CheckConstraint(
                condition=models.Q(source__in=["question", "answer", "api"]),
                name="moderation_source_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["ok", "unavailable"]),
                name="moderation_status_valid",
            ),
        ]
        verbose_name = _("moderation check")
        verbose_name_plural = _("moderation checks")

    def __str__(self) -> str:
        verdict = "flagged" if self.flagged else self.status
        return f"{self.source} check {self.pk} ({verdict})"

    @property
    def flagged_categories(self) -> list[str]:
        """Return the categories found, in the order they were recorded."""
        return [name for name, hit in self.categories.items() if hit]
