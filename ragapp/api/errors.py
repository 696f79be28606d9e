"""One error shape per API, for every way a request can fail.

The native API answers `{"error": {"code", "message"}}`; the OpenAI-compatible
one `{"error": {"message", "type", "param", "code"}}` with OpenAI's status
codes, so the official SDKs raise their own exception classes. Validation
errors are a 400 naming the field (`param`), never django-ninja's 422
`{"detail": [...]}`. Unexpected errors are a generic 500 whose only detail is
the request id that the log carries with the traceback (T27).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError as NinjaAuthenticationError
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError

from ragapp.api.exceptions import ApiError

logger = logging.getLogger(__name__)

Shape = Literal["native", "openai"]

OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "requests",
}
CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_exceeded",
}


def error_body(
    shape: Shape,
    *,
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    openai_type: str | None = None,
) -> dict[str, Any]:
    code = code or CODES.get(status, "server_error")
    if shape == "openai":
        kind = openai_type or OPENAI_TYPES.get(status, "server_error")
        return {
            "error": {"message": message, "type": kind, "param": param, "code": code}
        }
    error: dict[str, Any] = {"code": code, "message": message}
    if param:
        error["param"] = param
    return {"error": error}


def error_response(
    shape: Shape,
    *,
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    openai_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    response = JsonResponse(
        error_body(
            shape,
            status=status,
            message=message,
            code=code,
            param=param,
            openai_type=openai_type,
        ),
        status=status,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    if status in (409, 400, 404) and shape == "openai":
        # The SDK retries 409s (and anything it is told to): these are final.
        response["x-should-retry"] = "false"
    return response


def shape_of(request: HttpRequest) -> Shape:
    return "openai" if request.path.startswith("/v1/") else "native"


def param_of(loc: Sequence[Any]) -> str | None:
    """Turn a pydantic error location into OpenAI's `param` ("messages[0].role")."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "form", "file", "header"):
        parts = parts[1:]
        # django-ninja nests a body model under its argument's name.
        if parts and parts[0] in ("body", "payload", "data"):
            parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("function-after", "function-before", "union", "tagged-union"):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or None


def validation_message(error: dict[str, Any], param: str | None) -> str:
    kind = error.get("type", "")
    message = str(error.get("msg", "Invalid value"))
    if kind == "missing":
        return _("Missing required parameter: '%(param)s'.") % {"param": param}
    if kind == "extra_forbidden":
        return _("Unrecognized request argument supplied: %(param)s") % {"param": param}
    if param:
        return _("Invalid value for '%(param)s': %(message)s") % {
            "param": param,
            "message": message.removeprefix("Value error, "),
        }
    return message


def install(api: NinjaAPI, shape: Shape) -> None:
    """Register the handlers that give `api` its error shape."""

    def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return error_response(
            shape,
            status=exc.status,
            message=exc.message,
            code=exc.code,
            param=exc.param,
            openai_type=exc.openai_type,
            headers=exc.headers,
        )

    def on_validation(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        first = exc.errors[0] if exc.errors else {}
        param = param_of(first.get("loc", ()))
        if first.get("type") == "json_invalid" or (
            param is None and "body" in str(first.get("loc", ""))
        ):
            message = _(
                "We could not parse the JSON body of your request. The API "
                "expects a JSON payload."
            )
        else:
            message = validation_message(first, param)
        return error_response(shape, status=400, message=message, param=param)

    def on_auth(request: HttpRequest, exc: NinjaAuthenticationError) -> HttpResponse:
        return error_response(
            shape,
            status=401,
            message=_(
                "You didn't provide an API key. Send it in the Authorization "
                "header: 'Authorization: Bearer YOUR_KEY'."
            ),
            code="missing_api_key",
        )

    def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return error_response(shape, status=exc.status_code, message=str(exc))

    def on_404(request: HttpRequest, exc: Exception) -> HttpResponse:
        return error_response(shape, status=404, message=_("Not found."))

    def on_other(request: HttpRequest, exc: Exception) -> HttpResponse:
        request_id = getattr(request, "request_id", "")
        logger.error("API request %s failed", request_id, exc_info=exc)
        return error_response(
            shape,
            status=500,
            message=_(
                "The server had an error while processing your request. "
                "Quote request id %(id)s if you report it."
            )
            % {"id": request_id},
            code="server_error",
            openai_type="server_error",
        )

    api.add_exception_handler(ApiError, on_api_error)
    api.add_exception_handler(NinjaValidationError, on_validation)
    api.add_exception_handler(NinjaAuthenticationError, on_auth)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(Http404, on_404)
    api.add_exception_handler(Exception, on_other)
