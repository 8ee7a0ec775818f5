"""Bounded retries around network calls, on transient errors only."""
from __future__ import annotations

import logging
import random
from typing import Any, Callable, TypeVar

import tenacity
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

logger = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0

try:  # grpc ships with qdrant-client, but only matters with prefer_grpc=True
    import grpc

    _GRPC_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED}
except ImportError:  # pragma: no cover
    grpc = None
    _GRPC_TRANSIENT = set()


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: timeouts, refused connections, 429/5xx, gRPC UNAVAILABLE."""
    if isinstance(exc, (ResourceExhaustedResponse, ResponseHandlingException, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in TRANSIENT_STATUS
    if grpc is not None and isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return exc.code() in _GRPC_TRANSIENT
    try:
        import httpx
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, httpx.TransportError)


def _wait(state: tenacity.RetryCallState) -> float:
    """Honour the server's ``retry_after`` when it sends one, else back off exponentially."""
    exc = state.outcome.exception() if state.outcome else None
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        return min(float(retry_after), MAX_RETRY_AFTER_S)
    return min(8.0, 0.5 * 2 ** (state.attempt_number - 1)) + random.uniform(0.0, 0.25)


def _log(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    logger.warning("transient Qdrant error (attempt %d), retrying: %s", state.attempt_number, exc)


def call_with_retry(fn: Callable[..., T], *args: Any, attempts: int = 4, **kwargs: Any) -> T:
    """Call ``fn``; retry up to ``attempts`` times in all on transient errors, then re-raise."""
    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(max(1, attempts)), wait=_wait,
                                 retry=tenacity.retry_if_exception(is_transient),
                                 before_sleep=_log, reraise=True)
    return retrying(fn, *args, **kwargs)
