"""API keys, what they spend, and the log of every API request.

A key is shown once and stored as its SHA-256 digest: the secret has 256 bits
from `secrets`, so a fast digest is as safe as a slow one and keeps every
request's lookup a single indexed read. Only a short prefix stays in clear,
for people to tell their keys apart.
"""

from __future__ import annotations

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
