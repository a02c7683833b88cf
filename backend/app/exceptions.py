"""Application errors and the handlers that render every error as {"detail", "code"}."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.request_context import REQUEST_ID_HEADER, current_request_id

logger = logging.getLogger(__name__)


class AppError(Exception):
    """Base of every error a service raises; rendered with its status, code and message."""

    status_code: int = 400
    code: str = "bad_request"
    detail: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.detail
        self.code = code or self.code
        self.headers = headers or {}
        super().__init__(self.detail)

    def rendered_detail(self) -> Any:
        """What the response's `detail` holds (a message; subclasses may render a list)."""
        return self.detail


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"
    detail = "Bad request"


class Unauthorized(AppError):
    status_code = 401
    code = "not_authenticated"
    detail = "Not authenticated"

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": "Bearer"})


class PermissionDenied(AppError):
    status_code = 403
    code = "forbidden"
    detail = "You do not have permission to do this"


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    detail = "Not found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    detail = "Conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    detail = "Request body too large"


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"
    detail = "Too many requests"

    def __init__(
        self, detail: str | None = None, *, code: str | None = None, retry_after: int
    ) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


@dataclass(frozen=True)
class FieldError:
    """One entry of a 422 list: `loc` like ("body", "api_key"), `type` like "missing"."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"
    ctx: dict[str, str] | None = None


class InvalidFields(AppError):
    """422 for a rule that needs more than the request body (e.g. the stored row), rendered in
    FastAPI's validation shape so clients handle it like any other field error."""

    status_code = 422
    code = "validation_error"
    detail = "Invalid input"

    def __init__(self, errors: list[FieldError], *, code: str | None = None) -> None:
        super().__init__(
            "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors), code=code
        )
        self.errors = errors

    def rendered_detail(self) -> Any:
        rendered: list[dict[str, Any]] = []
        for error in self.errors:
            item: dict[str, Any] = {"type": error.type, "loc": list(error.loc), "msg": error.msg}
            if error.ctx:
                item["ctx"] = dict(error.ctx)
            rendered.append(item)
        return rendered


class BadGateway(AppError):
    """The upstream (a model provider) failed or could not be reached."""

    status_code = 502
    code = "bad_gateway"
    detail = "The upstream service failed"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    detail = "Service unavailable"


class GatewayTimeout(AppError):
    """The upstream (a model provider) did not answer in time."""

    status_code = 504
    code = "gateway_timeout"
    detail = "The upstream service did not answer in time"


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def _with_request_id(headers: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(headers or {})
    request_id = current_request_id()
    if request_id:
        out[REQUEST_ID_HEADER] = request_id
    return out


def error_response(
    status_code: int, detail: Any, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "code": code},
        status_code=status_code,
        headers=_with_request_id(headers),
    )


async def _app_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.rendered_detail(), exc.code, exc.headers)


async def _http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_")
    detail = exc.detail
    if status == 404 and detail == "Not Found":
        detail = "Not found"
    return error_response(status, detail, code, dict(exc.headers or {}))


async def _validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        item = {k: v for k, v in error.items() if k in ("type", "loc", "msg")}
        # `input` may echo a password back; `ctx` may hold exception objects.
        if "ctx" in error:
            item["ctx"] = {k: str(v) for k, v in error["ctx"].items()}
        errors.append(item)
    return error_response(422, errors, "validation_error")


async def _unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.error(
        "Unhandled error on %s %s (request id %s)",
        request.method,
        request.url.path,
        current_request_id(),
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return error_response(500, "Internal server error", "internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers so that no error reaches a client in another shape."""
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(Exception, _unhandled_error_handler)
