"""Errors raised by model providers, each with a message safe to show a user.

Callers branch on the class, never on the SDK behind it: only ragapp.providers
imports `openai`, and no `openai.*` exception leaves the package. Retryable
failures (the provider is down, slow or rate limiting) derive from
`ProviderUnavailableError`, so a Celery task can retry on that one class;
`ProviderConfigurationError` means retrying cannot help until an operator acts.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class ProviderError(Exception):
    """A model call failed; `message` says what happened in words a user can read."""

    code = "provider_error"
    default_message: str | Promise = _("The model provider failed to answer.")

    def __init__(self, message: str | Promise | None = None) -> None:
        self.message = str(message if message is not None else self.default_message)
        super().__init__(self.message)


class ProviderUnavailableError(ProviderError):
    """The provider is down, timed out or unreachable: retrying later may work."""

    code = "provider_unavailable"
    default_message = _("The model server is not answering; try again in a minute.")


class ProviderRateLimitedError(ProviderUnavailableError):
    """The provider asked to slow down; `retry_after` is its hint in seconds, if any."""

    code = "provider_rate_limited"
    default_message = _("The model server is busy; try again in a minute.")

    def __init__(
        self, message: str | Promise | None = None, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[object, ...]:
        # Celery and multiprocessing pickle errors; keep the hint across.
        return (type(self), (self.message,), {"retry_after": self.retry_after})


class ProviderConfigurationError(ProviderError):
    """The provider refused the request as configured (key, model, input): not retryable."""

    code = "provider_misconfigured"
    default_message = _(
        "The model provider rejected the request; an administrator needs to "
        "check the model settings."
    )


class ProviderStreamInterruptedError(ProviderError):
    """An answer broke off after part of it was shown: never retried, never complete.

    Not a `ProviderUnavailableError`: asking again costs a whole new answer, so
    it is the user's call, not an automatic retry.
    """

    code = "provider_stream_interrupted"
    default_message = _(
        "The model server stopped in the middle of the answer; the answer is "
        "incomplete. Ask again to get a whole one."
    )
