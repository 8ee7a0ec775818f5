"""What stands between a request and the collection: the API key, the body size cap, and error
bodies that say what went wrong (JSON, never a traceback)."""
from __future__ import annotations

import hmac
import logging
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from ..errors import HeadNotTrainedError

logger = logging.getLogger(__name__)
KEY_HEADER = "X-API-Key"


def error_body(message: str, detail: Any = None) -> dict[str, Any]:
    """Every error's JSON: ``message`` (one readable line) and ``detail`` (FastAPI's, where richer)."""
    return {"message": message, "detail": message if detail is None else detail}


def key_checker(api_key: str | None) -> Callable[[Request], None]:
    """A dependency refusing requests without the right ``X-API-Key`` (none when ``api_key`` is None)."""
    expected = None if api_key is None else api_key.encode("utf-8")

    def check(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get(KEY_HEADER, "").encode("utf-8")
        if not hmac.compare_digest(given, expected):   # constant time: no key prefix leaks by timing
            raise HTTPException(401, f"missing or wrong {KEY_HEADER} header")

    return check


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413, whether it declares its length
    or streams in chunks (counted as they arrive, so nothing larger is ever buffered)."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = JSONResponse(error_body(self._too_large()), status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._too_large())   # FastAPI answers it while parsing the body
            return message

        await self.app(scope, counted, send)

    def _too_large(self) -> str:
        return f"the request body is over the {self.max_bytes:,}-byte cap of this service"


def install_error_handlers(app: FastAPI) -> None:
    """4xx with a message for bad requests and bad input; 500 with no internals for the rest."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(ValidationError)   # a model built inside a route (e.g. from form fields)
    async def invalid(request: Request, exc: RequestValidationError | ValidationError) -> JSONResponse:
        errors = exc.errors()
        lines = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in errors]
        return JSONResponse(error_body("; ".join(lines), _plain(errors)), status_code=422)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(error_body(str(exc)), status_code=400)

    @app.exception_handler(HeadNotTrainedError)   # a mode this collection's model cannot give
    async def refused_mode(request: Request, exc: HeadNotTrainedError) -> JSONResponse:
        return JSONResponse(error_body(str(exc)), status_code=409)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(error_body(f"internal error ({type(exc).__name__}); the server log has the details"),
                            status_code=500)


def _plain(errors: list[dict]) -> list[dict]:
    """Validation errors without their ``ctx`` / ``input`` objects (not always JSON-serialisable)."""
    return [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in errors]
