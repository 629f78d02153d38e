"""Every refusal as JSON ``{code, message}`` with its HTTP status, from the one table
(``choir.actions.refusals.REFUSALS``): an action's ``Refusal``, the program's ``ProgramError`` (the
status of its family) and this layer's own ``ApiError``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from choir.actions.refusals import Refusal, program_status, status_of, unexpected
from choir.program import ProgramError


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def of(cls, code: str, message: str) -> ApiError:
        """A refusal by code, with the status the table gives it."""
        return cls(status_of(code), code, message)


def body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


async def api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(body(exc.code, exc.message), status_code=exc.status)


async def program_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProgramError)
    return JSONResponse(body(exc.code, exc.message), status_code=program_status(exc))


async def refusal(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refusal)
    return JSONResponse(body(exc.code, exc.message), status_code=exc.status)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
    return JSONResponse(body("invalid_payload", f"{where}: {first.get('msg')}"), status_code=422)


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # A body the framework could not parse at all (thousands of nested brackets, say): the same
        # answer as any malformed JSON body.
        return JSONResponse(body("invalid_payload", f"request body: {exc.detail}"), status_code=422)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(body(code, str(exc.detail)), status_code=exc.status_code)


async def unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    """What no other handler took: the database away for now (503, retryable, with Retry-After)
    or a bug (500 ``internal``, logged by the server with its trace)."""
    code, message = unexpected(exc)
    headers = {"Retry-After": "1"} if code == "store_unavailable" else None
    return JSONResponse(body(code, message), status_code=status_of(code), headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(Exception, unexpected_error)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ProgramError, program_error)
    app.add_exception_handler(Refusal, refusal)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
