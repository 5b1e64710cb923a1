"""One error model for every 4xx: ``{"error": code, "detail": sentence}``.

Domain exceptions are mapped to HTTP statuses in one table, here; routes never raise HTTPException.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from enclave.domain import errors

log = logging.getLogger("enclave.api")

STATUS: dict[type[errors.EnclaveError], int] = {
    errors.InvalidInput: 400,
    errors.AuthenticationFailed: 401,
    errors.PermissionDenied: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.InvalidState: 409,
    errors.PayloadTooLarge: 413,
    errors.ConfigurationError: 503,
}

HTTP_CODES = {
    400: "bad_request",
    401: "authentication_failed",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


def status_for(exc: errors.EnclaveError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


def _headers(status: int) -> dict[str, str] | None:
    return {"WWW-Authenticate": "Bearer"} if status == 401 else None


def _describe_validation(errs: list[Any]) -> str:
    parts = []
    for err in errs[:10]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"] or ["body"]
        msg = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            parts.append(f"the request body is not valid JSON ({err.get('ctx', {}).get('error', msg)})")
        else:
            parts.append(f"{'.'.join(loc)}: {msg}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.EnclaveError)
    async def _domain(_request: Request, exc: errors.EnclaveError) -> JSONResponse:
        status = status_for(exc)
        return JSONResponse(error_body(exc.code, exc.detail), status_code=status, headers=_headers(status))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("validation_error", _describe_validation(list(exc.errors()))), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            if request.app.openapi_url:
                detail = f"no such endpoint; the API is described at {request.app.openapi_url}"
            else:
                detail = "no such endpoint here: a workspace reaches only its project's routes"
        return JSONResponse(error_body(code, detail), exc.status_code, headers=_headers(exc.status_code))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        reference = secrets.token_hex(4)
        log.exception("internal error %s on %s %s", reference, request.method, request.url.path)
        return JSONResponse(
            error_body(
                "internal_error",
                "this is probably a bug in Enclave; the operator's log has the details"
                f" (reference {reference})",
            ),
            500,
        )
