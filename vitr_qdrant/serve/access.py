"""The access log: one line per request (method, path, status, bytes, time, client), never a
header, a query string or a body, so no key or filter value reaches it; ``--log-json`` makes
every line of the service's log a JSON object."""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

ACCESS_LOGGER = "vitr_qdrant.serve.access"
logger = logging.getLogger(ACCESS_LOGGER)


class AccessLog:
    """ASGI middleware logging each HTTP request once it is answered (at INFO on :data:`ACCESS_LOGGER`)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, seen = time.perf_counter(), {"status": 500, "bytes": 0}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client") or ("-", 0)
            fields = {"method": scope["method"], "path": scope.get("path", ""), "status": seen["status"],
                      "bytes": seen["bytes"], "ms": round(1000 * (time.perf_counter() - start), 1),
                      "client": client[0]}
            logger.info("%(client)s %(method)s %(path)s %(status)s %(bytes)sB %(ms)sms", fields,
                        extra={"access": fields})


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, logger, message (and an access line's fields)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                               "logger": record.name, "message": record.getMessage()}
        out.update(getattr(record, "access", {}))
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(json_lines: bool) -> None:
    """Log the access lines at INFO (the CLI's root handler writes them to stderr), and with
    ``json_lines`` make every line of the log, the server's own included, a JSON object."""
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    if json_lines:
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())
