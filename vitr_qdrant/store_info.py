"""Describe a store or one of its collections without loading a model."""
from __future__ import annotations

import os
from typing import Any

from .connectors import CollectionSpec, StoreBackend, create_backend, default_store_path
from .errors import CollectionNotFoundError
from .sources.url_policy import redact_url

TEXTS_SUFFIX = "__texts"
UPGRADE_SUFFIX = "__upgrading"   # the points of a collection while `vitr upgrade` rebuilds it


def store_info(name: str | None = None, *, path: str | os.PathLike[str] | None = None, url: str | None = None,
               api_key: str | None = None, backend: str | None = None, **options: Any) -> dict[str, Any]:
    """Statistics of collection ``name`` (images, texts, stored model fingerprint), or with no
    name the store's collections: ``collections`` (of images) and ``text_collections`` (the
    ``<name>__texts`` companions of ``add_texts``). ``options`` go to the backend (e.g. ``retries``).

    Raises:
        CollectionNotFoundError: no collection of that name.
    """
    if path is None and url is None and backend != "qdrant-remote":
        path = default_store_path(backend)
    store = create_backend(path=path, url=url, api_key=api_key, backend=backend, **options)
    where = redact_url(url) if url else str(path)
    try:
        names = image_collections(store)
        if name is None:
            texts = sorted(n for n in store.list_collections() if n.endswith(TEXTS_SUFFIX))
            return {"location": where, "backend": store.name, "collections": names, "text_collections": texts}
        meta = store.read_metadata(name)
        if meta is None:
            raise CollectionNotFoundError(f"no collection {name!r} at {where}; found: {names or 'none'}")
        info = {"name": name, "backend": store.name, "location": where, "images": _count(store, name, meta),
                "texts": 0, "model": meta.get("fingerprint"), "stored": meta}
        texts_meta = store.read_metadata(name + TEXTS_SUFFIX)
        if texts_meta is not None:
            with sibling_store(store) as texts:
                info["texts"] = _count(texts, name + TEXTS_SUFFIX, texts_meta)
        return info
    finally:
        store.close()


def list_collections(*, path: str | os.PathLike[str] | None = None, url: str | None = None,
                     api_key: str | None = None, backend: str | None = None, **options: Any) -> list[str]:
    """Names of the collections of images in a store: the embedded one at ``path`` (default: the
    data directory), or a Qdrant server at ``url``. A ``path`` that does not exist holds none (and
    is not created). ``options`` go to the backend (e.g. ``retries``, ``timeout``)."""
    if path is not None and url is None and not os.path.isdir(os.path.expanduser(os.fspath(path))):
        return []
    return store_info(None, path=path, url=url, api_key=api_key, backend=backend, **options)["collections"]


def drop_collection(name: str, *, path: str | os.PathLike[str] | None = None, url: str | None = None,
                    api_key: str | None = None, backend: str | None = None, **options: Any) -> None:
    """Delete collection ``name`` and its companions (texts, an interrupted upgrade's points; their
    files too) without loading a model.

    Raises:
        CollectionNotFoundError: no collection of that name (nothing is deleted).
    """
    if path is None and url is None and backend != "qdrant-remote":
        path = default_store_path(backend)
    store = create_backend(path=path, url=url, api_key=api_key, backend=backend, **options)
    try:
        if store.read_metadata(name) is None:
            names = image_collections(store)
            raise CollectionNotFoundError(f"no collection {name!r} at {redact_url(url) if url else path}; "
                                          f"found: {names or 'none'}")
        for companion in (TEXTS_SUFFIX, UPGRADE_SUFFIX):
            store.drop_collection(name + companion)
        store.drop_collection(name)
    finally:
        store.close()


def image_collections(store: StoreBackend) -> list[str]:
    """Names of the vitr collections in a store (texts companions left out)."""
    return sorted(n for n in store.list_collections() if not n.endswith((TEXTS_SUFFIX, UPGRADE_SUFFIX)))


def _count(store: StoreBackend, name: str, meta: dict[str, Any]) -> int:
    store.open_collection(CollectionSpec(name, **meta["schema"]), create=False)  # no fingerprint: no check
    return store.count()


def sibling_store(backend: StoreBackend) -> StoreBackend:
    """A second backend on the same store (shares a qdrant-client; a new Edge shard directory)."""
    client = getattr(backend, "client", None)
    if client is not None:
        from .connectors.client import QdrantClientBackend

        return QdrantClientBackend(client=client, **getattr(backend, "cluster", {}))
    if hasattr(backend, "path"):
        return create_backend(path=backend.path)
    raise TypeError(f"cannot open a texts collection next to a {type(backend).__name__}")
