"""What stands between a request and the collection: the Host allow-list, the refusal of
cross-site writes, the API key, the body size cap, and error bodies that say what went wrong
(JSON, never a traceback)."""
from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from ..errors import CollectionClosedError, HeadNotTrainedError, InputError

logger = logging.getLogger(__name__)
KEY_HEADER = "X-API-Key"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def error_body(message: str, detail: Any = None) -> dict[str, Any]:
    """Every error's JSON: ``message`` (one readable line) and ``detail`` (FastAPI's, where richer)."""
    return {"message": message, "detail": message if detail is None else detail}


class Secret:
    """A key kept out of reprs, logs and the frame locals that error reporters collect.

    Raises:
        InputError: a key no client can send in a header: empty, blank, with spaces around it,
            or with other than printable ASCII characters.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not isinstance(value, str) or not value:
            raise InputError("the service key is empty: give a key (clients send it as X-API-Key), or none "
                             "at all for a service without one on 127.0.0.1")
        if value != value.strip() or not all(0x21 <= ord(c) <= 0x7E for c in value):
            raise InputError("the service key must be printable ASCII without spaces (no client can send "
                             "other characters in the X-API-Key header); choose another key")
        self._value = value.encode("ascii")

    def matches(self, given: str | None) -> bool:
        """Whether ``given`` is the key (compared in constant time: no key prefix leaks by timing)."""
        return hmac.compare_digest((given or "").encode("utf-8", "replace"), self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a service key is not pickled")


def key_checker(api_key: Secret | str | None) -> Callable[[Request], None]:
    """A dependency refusing requests without the right ``X-API-Key`` (none when ``api_key`` is None)."""
    secret = api_key if api_key is None or isinstance(api_key, Secret) else Secret(api_key)
    del api_key

    def check(request: Request) -> None:
        if secret is not None and not secret.matches(request.headers.get(KEY_HEADER)):
            raise HTTPException(401, f"missing or wrong {KEY_HEADER} header")

    return check


def host_name(value: str) -> str:
    """The host of a ``Host`` header or an origin's netloc, lower-case, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def default_hosts(bound: str | None = None, extra: Iterable[str] = ()) -> list[str]:
    """The Host names a service answers: loopback names, the address it is bound to, and ``extra``."""
    hosts = [*LOOPBACK_NAMES]
    if bound and not _is_wildcard(bound):
        hosts.append(bound)
    return list(dict.fromkeys(host_name(h) if h != "*" else h for h in [*hosts, *extra]))


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class BrowserGuard:
    """ASGI middleware against what a web page on another site can make a browser do.

    * A request whose ``Host`` is not one of ``allowed_hosts`` gets 421 (DNS rebinding: a page
      on a foreign name that resolves to this machine cannot read the API).
    * A state-changing request (not GET/HEAD/OPTIONS) sent cross-site gets 403: its ``Origin`` is
      not this service's own, or its ``Sec-Fetch-Site`` says ``cross-site`` / ``same-site``
      (a page elsewhere cannot upload, delete or make the service work).
    """

    def __init__(self, app: Any, allowed_hosts: Iterable[str]):
        self.app = app
        self.hosts = frozenset(h if h == "*" else host_name(h) for h in allowed_hosts)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        refusal = self.refusal(scope["method"], headers)
        if refusal is not None:
            status, message = refusal
            return await JSONResponse(error_body(message), status_code=status)(scope, receive, send)
        await self.app(scope, receive, send)

    def refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, message) when the request is refused, else None."""
        host = headers.get("host", "")
        if "*" not in self.hosts and host_name(host) not in self.hosts:
            return 421, (f"this service does not answer for host {host_name(host)[:100]!r}; start it with "
                         f"--allowed-host NAME to allow a name")
        if method.upper() in SAFE_METHODS:
            return None
        fetch_site = headers.get("sec-fetch-site", "").lower()
        if fetch_site in ("cross-site", "same-site"):
            return 403, f"a {fetch_site} request may not change or query this service (Sec-Fetch-Site)"
        origin = headers.get("origin")
        if origin is not None and not self._own_origin(origin, host):
            return 403, f"a request from origin {origin[:100]!r} may not change or query this service"
        return None

    def _own_origin(self, origin: str, host: str) -> bool:
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            return False
        if not netloc:
            return False
        # its own origin; or a name given with --allowed-host (a reverse proxy may rewrite Host). A loopback
        # name on another port is another local site, never this service.
        return netloc == host.strip().lower() or host_name(netloc) in self.hosts - {"*", *LOOPBACK_NAMES}


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

    @app.exception_handler(CollectionClosedError)   # the service is shutting down
    async def closed(request: Request, exc: CollectionClosedError) -> JSONResponse:
        return JSONResponse(error_body(str(exc)), status_code=503)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(error_body(f"internal error ({type(exc).__name__}); the server log has the details"),
                            status_code=500)


def _plain(errors: list[dict]) -> list[dict]:
    """Validation errors without their ``ctx`` / ``input`` objects (not always JSON-serialisable)."""
    return [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in errors]
