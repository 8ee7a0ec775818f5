"""Choose and build a backend from the arguments a user gives."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError
from .base import StoreBackend

logger = logging.getLogger(__name__)

BackendName = Literal["edge", "qdrant-local", "qdrant-remote"]
DATA_DIR_ENV = "VITR_QDRANT_HOME"


def default_data_dir() -> Path:
    """Data directory of the embedded store: ``$VITR_QDRANT_HOME``, else a stable user data dir:
    ``$XDG_DATA_HOME/vitr-qdrant`` or ``~/.local/share/vitr-qdrant`` (``%LOCALAPPDATA%\\vitr-qdrant``
    on Windows), never a temporary one."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    if os.name == "nt":  # pragma: no cover
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "vitr-qdrant"


def default_store_path(backend: str | None = None, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The embedded store's directory when no ``path`` is given: ``data_dir`` (default:
    :func:`default_data_dir`), or its ``qdrant-local`` sub-directory for qdrant-client local mode
    (the two engines' files never share a directory)."""
    base = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    return base / "qdrant-local" if backend == "qdrant-local" else base


def create_backend(*, path: str | os.PathLike[str] | None = None, location: str | None = None,
                   url: str | None = None, api_key: str | None = None, backend: BackendName | None = None,
                   **options: Any) -> StoreBackend:
    """Return an (unopened) backend chosen by the arguments.

    * ``url=...`` (or ``backend="qdrant-remote"``): a Qdrant server or cluster via qdrant-client;
      ``options`` may hold ``shard_number``, ``replication_factor``, ``write_consistency_factor``,
      ``timeout``, ``retries``, ``prefer_grpc``...
    * ``location=":memory:"`` or ``backend="qdrant-local"``: qdrant-client local mode
      (in memory, or persistent in ``path``).
    * otherwise: the embedded Qdrant Edge engine in ``path`` (default: :func:`default_data_dir`);
      ``options`` may hold ``max_search_threads``, ``optimize_every``.

    Raises:
        InputError: contradictory arguments (e.g. ``url`` with ``path``) or an unknown backend.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if backend not in (None, "edge", "qdrant-local", "qdrant-remote"):
        raise InputError(f"unknown backend {backend!r}; choose 'edge', 'qdrant-local' or 'qdrant-remote'")
    if url is not None or backend == "qdrant-remote":
        if url is None or path is not None or location is not None:
            raise InputError("a remote backend takes url= (and api_key=), not path= or location=")
        _check_options(options, "remote")
        return _client(url=url, api_key=api_key, **options)
    if api_key is not None:
        raise InputError("api_key= only applies to a remote backend (url=...)")
    if location is not None or backend == "qdrant-local":
        if location not in (None, ":memory:"):
            raise InputError(f"location must be ':memory:' (use path= for a directory), got {location!r}")
        if location is not None and path is not None:
            raise InputError("give either location=':memory:' or path=, not both")
        if location is None and path is None:
            path = default_store_path("qdrant-local")
        _check_options(options, "qdrant-local")
        return _client(location=location, path=None if path is None else str(path), **options)
    from .edge import EdgeBackend

    _check_options(options, "edge")
    return EdgeBackend(default_store_path() if path is None else path, **options)


def backend_options(kind: str) -> list[str]:
    """The options a backend of ``kind`` (``edge``, ``qdrant-local``, ``remote``) takes."""
    if kind == "edge":
        from .edge import EdgeBackend

        return _parameters(EdgeBackend.__init__, {"path"})
    from qdrant_client import QdrantClient

    from .client import QdrantClientBackend

    own = _parameters(QdrantClientBackend.__init__, {"location", "path", "url", "api_key", "client"})
    if kind != "remote":   # cluster and network options mean nothing to a local store
        return sorted(set(own) - {"shard_number", "replication_factor", "write_consistency_factor", "retries"})
    return sorted(set(own) | set(_parameters(QdrantClient.__init__, {"location", "path", "url", "api_key"})))


def _parameters(fn: Any, leave_out: set[str]) -> list[str]:
    import inspect

    return sorted(n for n, p in inspect.signature(fn).parameters.items()
                  if n != "self" and n not in leave_out and p.kind is not p.VAR_KEYWORD)


def _check_options(options: dict[str, Any], kind: str) -> None:
    """An InputError naming the valid options if ``options`` holds one a ``kind`` backend does not take."""
    valid = backend_options(kind)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        from .schema import STORAGE_OPTIONS

        raise InputError(f"unknown option(s) {unknown} for the {kind} backend; valid: {valid}, and the "
                         f"collection's storage options {list(STORAGE_OPTIONS)}")


def _client(**kwargs: Any) -> StoreBackend:
    from .client import QdrantClientBackend

    return QdrantClientBackend(**kwargs)
