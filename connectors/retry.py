"""The one retry policy at the network edge (Qdrant servers, image URLs): bounded attempts (and
optionally a deadline), on transient errors only, exponential backoff with jitter, and a server's
retry-after honoured."""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import tenacity

logger = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth another attempt: timeouts, too early, too many requests, server errors."""
MAX_WAIT_S = 10.0
"""The longest wait between two attempts, a server's retry-after included."""


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all; the first wait is ``backoff`` seconds, doubling (plus up to a quarter
    of jitter) to at most :data:`MAX_WAIT_S`, unless the error carries ``retry_after_s``."""

    attempts: int = 4
    backoff: float = 0.5

    def wait(self, state: tenacity.RetryCallState) -> float:
        """Seconds to wait before the next attempt."""
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after_s", None)
        if after is not None:
            return min(max(0.0, float(after)), MAX_WAIT_S)
        delay = self.backoff * 2 ** (state.attempt_number - 1)
        return min(MAX_WAIT_S, delay * (1 + random.random() / 4))


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, transient: Callable[[BaseException], bool],
                    what: str, deadline: float | None = None) -> T:
    """Call ``fn``; on an error ``transient`` accepts, wait and try again, up to ``policy.attempts``
    times in all, then re-raise the last error. ``what`` names the call in the log. With a
    ``deadline`` (a ``time.monotonic()`` value), no attempt starts after it: a wait that would
    end past it gives up at once."""
    def log(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning("transient error from %s (attempt %d of %d), retrying: %s", what, state.attempt_number,
                       policy.attempts, exc)

    def past_deadline(state: tenacity.RetryCallState) -> bool:
        return deadline is not None and time.monotonic() + (state.upcoming_sleep or 0.0) >= deadline

    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(max(1, policy.attempts)) | past_deadline,
                                 wait=policy.wait, retry=tenacity.retry_if_exception(transient), before_sleep=log,
                                 reraise=True)
    return retrying(fn)
