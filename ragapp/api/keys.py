"""API keys: issue, authenticate, revoke.

Keys are `rag_` and 43 URL-safe characters: 32 bytes from `secrets`, nothing
derived from ids, times or other tokens (RAGFlow's CVE-2025-69286 derived its
keys from share tokens). The database keeps the SHA-256 digest and a prefix;
the key itself exists only in the reply that issued it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ragapp.api.exceptions import AuthenticationError
from ragapp.api.models import ApiKey
from ragapp.documents.models import Collection
from ragapp.documents.selectors import collection_ids_readable

KEY_PREFIX = "rag_"
SECRET_BYTES = 32
SHOWN_PREFIX_CHARS = 12
_SECRET_CHARS = len(KEY_PREFIX) + 43  # token_urlsafe(32) is 43 characters


@dataclass(frozen=True)
class IssuedKey:
    """A new key and its secret, which is never stored and never shown again."""

    key: ApiKey
    secret: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_key(value: str) -> bool:
    """Whether `value` has a key's shape (to spot keys pasted into URLs)."""
    return value.startswith(KEY_PREFIX) and len(value) == _SECRET_CHARS


def apikey_create(
    *,
    user: AbstractBaseUser,
    name: str,
    collections: Iterable[Collection] = (),
    read_only: bool = False,
    expires_at: datetime | None = None,
    created_by: AbstractBaseUser | None = None,
    requests_per_minute: int | None = None,
    monthly_token_budget: int | None = None,
) -> IssuedKey:
    """Issue a key for `user`; collections it cannot read are not kept.

    A key never grants more than its user has, so a scope naming a collection
    the user cannot read would only mislead whoever reads the key's page.
    """
    secret = KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    with transaction.atomic():
        key = ApiKey.objects.create(
            user=user,
            name=" ".join(name.split())[:100] or _("API key"),
            prefix=secret[:SHOWN_PREFIX_CHARS],
            digest=digest(secret),
            read_only=read_only,
            expires_at=expires_at,
            created_by=created_by or user,
            requests_per_minute=requests_per_minute,
            monthly_token_budget=monthly_token_budget,
        )
        chosen = [c.pk for c in collections]
        if chosen:
            key.collections.set(
                Collection.objects.filter(pk__in=chosen).filter(
                    pk__in=collection_ids_readable(user=user)
                )
            )
    return IssuedKey(key=key, secret=secret)


def apikey_authenticate(secret: str) -> ApiKey:
    """Return the usable key whose secret this is, or raise AuthenticationError.

    Looked up on every request, never cached: a revoked key, an expired one
    or one whose user was disabled fails on the very next request.
    """
    if not secret or not looks_like_key(secret):
        raise AuthenticationError(_("Incorrect API key provided."))
    wanted = digest(secret)
    key = ApiKey.objects.select_related("user").filter(digest=wanted).first()
    if key is None or not hmac.compare_digest(key.digest, wanted):
        raise AuthenticationError(_("Incorrect API key provided."))
    if key.revoked_at is not None:
        raise AuthenticationError(_("This API key has been revoked."))
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise AuthenticationError(_("This API key has expired."))
    if not key.user.is_active:
        raise AuthenticationError(_("The account of this API key is disabled."))
    return key


def apikey_revoke(*, key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=key.pk, revoked_at=None).update(
            revoked_at=key.revoked_at
        )


def apikey_touch(*, key: ApiKey) -> None:
    """Record use, at most once a minute per key (a write per request is waste)."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
