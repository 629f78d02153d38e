"""Errors as JSON ``{code, message}`` with a fitting HTTP status."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from choir.program import ProgramError, errors


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def program_status(error: ProgramError) -> int:
    for cls, status in (
        (errors.NotFound, 404),
        (errors.Forbidden, 403),
        (errors.Conflict, 409),
        (errors.RateLimited, 429),
        (errors.InvalidInput, 422),
    ):
        if isinstance(error, cls):
            return status
    return 400


def body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


async def api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(body(exc.code, exc.message), status_code=exc.status)


async def program_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProgramError)
    return JSONResponse(body(exc.code, exc.message), status_code=program_status(exc))


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
    return JSONResponse(body("invalid_payload", f"{where}: {first.get('msg')}"), status_code=422)


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(body(code, str(exc.detail)), status_code=exc.status_code)
