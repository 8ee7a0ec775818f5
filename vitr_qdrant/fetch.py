"""Fetch images over http(s): the retry policy of :mod:`vitr_qdrant.connectors.retry`, timeouts, a size cap."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import httpx

from .connectors.retry import TRANSIENT_STATUS, RetryPolicy, call_with_retry
from .errors import FetchError

logger = logging.getLogger(__name__)

SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
ALLOWED_SCHEMES = ("http", "https")


class _Transient(FetchError):
    """A failure worth another attempt (timeout, refused connection, a status in TRANSIENT_STATUS)."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class FetchCfg:
    """Timeouts, attempts and size cap of URL fetches."""

    timeout: float = 10.0
    attempts: int = 3
    backoff: float = 0.5
    max_bytes: int = 50 * 2**20


def url_scheme(text: str) -> str | None:
    """The lower-cased scheme of ``text`` if it looks like a URL (``scheme://...``), else None."""
    m = SCHEME_RE.match(text)
    return m.group(1).lower() if m else None


def new_client(cfg: FetchCfg = FetchCfg()) -> httpx.Client:
    """An HTTP client for :func:`fetch_url` (thread-safe: share it across a batch)."""
    return httpx.Client(timeout=cfg.timeout, follow_redirects=True, max_redirects=5)


def fetch_url(url: str, cfg: FetchCfg = FetchCfg(), client: httpx.Client | None = None) -> bytes:
    """Download ``url`` (http or https only) and return its bytes.

    Raises:
        FetchError: unsupported scheme, a non-retryable HTTP status, a body over
            ``cfg.max_bytes``, or a transient failure that outlasted ``cfg.attempts``.
    """
    scheme = url_scheme(url)
    if scheme not in ALLOWED_SCHEMES:
        raise FetchError(f"unsupported URL scheme {scheme!r}: only http and https are fetched")
    own = client is None
    client = client or new_client(cfg)
    try:
        return call_with_retry(lambda: _get(client, url, cfg.max_bytes), RetryPolicy(cfg.attempts, cfg.backoff),
                               lambda exc: isinstance(exc, _Transient), url)
    except _Transient as exc:
        raise FetchError(f"{exc} (gave up after {cfg.attempts} attempt(s))") from exc
    finally:
        if own:
            client.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:   # an HTTP date: fall back to our own backoff
        return None


def _get(client: httpx.Client, url: str, max_bytes: int) -> bytes:
    try:
        with client.stream("GET", url) as resp:
            if resp.status_code in TRANSIENT_STATUS:
                raise _Transient(f"HTTP {resp.status_code} from {url}", _retry_after(resp.headers.get("retry-after")))
            if resp.status_code >= 400:
                raise FetchError(f"HTTP {resp.status_code} from {url}")
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{url} is {int(declared)} bytes, over the {max_bytes}-byte cap")
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{url} is over the {max_bytes}-byte cap")
                chunks.append(chunk)
            return b"".join(chunks)
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise _Transient(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc
