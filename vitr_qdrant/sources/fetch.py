"""Fetch images over http(s): the URL policy of :mod:`vitr_qdrant.sources.url_policy` on every hop, the
retry policy of :mod:`vitr_qdrant.connectors.retry`, timeouts, a total deadline and a size cap."""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import httpx

from ..connectors.retry import TRANSIENT_STATUS, RetryPolicy, call_with_retry
from ..errors import FetchError
from .url_policy import URLPolicy, redact_url

logger = logging.getLogger(__name__)

SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _Transient(FetchError):
    """A failure worth another attempt (timeout, refused connection, a status in TRANSIENT_STATUS)."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class FetchCfg:
    """Timeouts, attempts, deadline, size cap and URL policy of URL fetches (see ``Settings``)."""

    timeout: float = 10.0
    attempts: int = 3
    backoff: float = 0.5
    max_bytes: int = 50 * 2**20
    deadline: float = 30.0
    allow: tuple[str, ...] = ()


def url_scheme(text: str) -> str | None:
    """The lower-cased scheme of ``text`` if it looks like a URL (``scheme://...``), else None."""
    m = SCHEME_RE.match(text)
    return m.group(1).lower() if m else None


def new_client(cfg: FetchCfg = FetchCfg()) -> httpx.Client:
    """An HTTP client for :func:`fetch_url` (thread-safe: share it across a batch). It follows no
    redirects itself: :func:`fetch_url` checks every hop."""
    return httpx.Client(timeout=cfg.timeout, follow_redirects=False)


def fetch_url(url: str, cfg: FetchCfg = FetchCfg(), client: httpx.Client | None = None) -> bytes:
    """Download ``url`` (http or https only) and return its bytes, within ``cfg.deadline`` seconds
    in all (attempts, waits and redirects included).

    Raises:
        URLPolicyError: the URL, or a redirect, goes where the URL policy does not allow.
        FetchError: a non-retryable HTTP status, a body over ``cfg.max_bytes``, the deadline, or a
            transient failure that outlasted ``cfg.attempts``.
    """
    policy, shown = URLPolicy.create(cfg.allow), redact_url(url)
    end, attempts = time.monotonic() + cfg.deadline, []
    own = client is None
    client = client or new_client(cfg)

    def attempt() -> bytes:
        attempts.append(1)
        return _get(client, httpx.URL(url), cfg, policy, end)

    try:
        return call_with_retry(attempt, RetryPolicy(cfg.attempts, cfg.backoff), lambda e: isinstance(e, _Transient),
                               shown, deadline=end)
    except _Transient as exc:
        why = f"gave up after {len(attempts)} attempt(s)"
        if len(attempts) < cfg.attempts:
            why += f": the next would end past the url_deadline of {cfg.deadline:g} s"
        raise FetchError(f"{exc} ({why})") from exc
    finally:
        if own:
            client.close()


def _get(client: httpx.Client, url: httpx.URL, cfg: FetchCfg, policy: URLPolicy, end: float) -> bytes:
    """One attempt: follow up to :data:`MAX_REDIRECTS` redirects, each hop checked by ``policy``
    and connected to the address it checked."""
    origin, auth = _origin(url), (httpx.BasicAuth(url.username, url.password) if url.userinfo else None)
    for _ in range(MAX_REDIRECTS + 1):
        shown = redact_url(str(url))
        try:
            address = policy.check(url)
        except OSError as exc:
            raise _Transient(f"cannot resolve the host of {shown}: {exc}") from exc
        request = client.build_request("GET", url.copy_with(host=address, username=None, password=None),
                                       headers={"Host": url.netloc.decode("ascii")}, timeout=_timeout(cfg, end),
                                       extensions={"sni_hostname": url.host} if url.scheme == "https" else None)
        try:
            resp = client.send(request, stream=True, auth=auth if _origin(url) == origin else None)
            try:
                location = resp.headers.get("location") if resp.status_code in _REDIRECTS else None
                if location is None:
                    return _body(resp, shown, cfg, end)
            finally:
                resp.close()
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Transient(f"cannot reach {shown}: {type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"cannot fetch {shown}: {type(exc).__name__}: {exc}") from exc
        url = url.join(location)
    raise FetchError(f"{redact_url(str(url))}: more than {MAX_REDIRECTS} redirects")


def _body(resp: httpx.Response, shown: str, cfg: FetchCfg, end: float) -> bytes:
    if resp.status_code in TRANSIENT_STATUS:
        raise _Transient(f"HTTP {resp.status_code} from {shown}", _retry_after(resp.headers.get("retry-after")))
    if resp.status_code >= 400:
        raise FetchError(f"HTTP {resp.status_code} from {shown}")
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cfg.max_bytes:
        raise FetchError(f"{shown} is {int(declared)} bytes, over the {cfg.max_bytes}-byte cap")
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > cfg.max_bytes:
            raise FetchError(f"{shown} is over the {cfg.max_bytes}-byte cap")
        if time.monotonic() > end:
            raise FetchError(f"{shown} was not done within the url_deadline of {cfg.deadline:g} s")
        chunks.append(chunk)
    return b"".join(chunks)


def _timeout(cfg: FetchCfg, end: float) -> httpx.Timeout:
    """The client's timeouts, shortened to what is left before the deadline."""
    return httpx.Timeout(max(0.01, min(cfg.timeout, end - time.monotonic())))


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:   # an HTTP date: fall back to our own backoff
        return None
