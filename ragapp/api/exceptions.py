"""Errors of the API layer, each with a status, a code and a message safe to show.

Routers render them in their own shape: the native API as
`{"error": {"code", "message"}}`, the OpenAI-compatible one as OpenAI's
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the API refuses; `message` is meant for the caller."""

    status = 400
    code = "invalid_request"
    openai_type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}


class AuthenticationError(ApiError):
    status = 401
    code = "invalid_api_key"


class PermissionDeniedError(ApiError):
    status = 403
    code = "permission_denied"


class NotFoundError(ApiError):
    """Missing and forbidden alike: a guessed id of another user's object."""

    status = 404
    code = "not_found"


class ConflictError(ApiError):
    status = 409
    code = "conflict"


class RateLimitedError(ApiError):
    status = 429
    code = "rate_limit_exceeded"
    openai_type = "requests"


class BudgetExceededError(RateLimitedError):
    code = "insufficient_quota"
    openai_type = "insufficient_quota"


class PayloadTooLargeError(ApiError):
    status = 413
    code = "request_too_large"


class UnavailableError(ApiError):
    status = 503
    code = "model_unavailable"
    openai_type = "server_error"
