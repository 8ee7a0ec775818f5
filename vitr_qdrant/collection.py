"""VitrCollection: relation-aware image search (and image-to-text) on one Qdrant collection."""
from __future__ import annotations

import functools
import logging
import os
import threading
import uuid
from typing import Any, Callable, Mapping, Sequence, TypeVar

from . import ingest, search
from .search import collection_spec, warn_first_stage
from .connectors import (STORAGE_OPTIONS, CollectionSpec, PointId, StoreBackend, create_backend,
                         default_store_path, point_id)
from .connectors.ids import user_key
from .encoders import VitrModel, load_model
from .errors import CollectionClosedError, InputError, StoreError
from .inputs import load_one
from .results import AddReport, Hit, ItemId, Record, user_id
from .settings import Settings
from .store_info import TEXTS_SUFFIX, UPGRADE_SUFFIX, sibling_store

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def _while_open(method: F) -> F:
    """Run ``method`` only on an open collection, and let :meth:`VitrCollection.close` (from any
    thread) wait for it: a call after ``close`` raises :class:`CollectionClosedError`."""

    @functools.wraps(method)
    def call(self: "VitrCollection", *args: Any, **kwargs: Any) -> Any:
        with self._use:
            if self._closed:
                raise CollectionClosedError(f"collection {self.name!r} is closed: open it again "
                                            f"(VitrCollection({self.name!r}, ...)) to use it")
            me = threading.get_ident()
            self._active[me] = self._active.get(me, 0) + 1
        try:
            return method(self, *args, **kwargs)
        finally:
            with self._use:
                self._active[me] -= 1
                if not self._active[me]:
                    del self._active[me]
                self._use.notify_all()

    return call  # type: ignore[return-value]


class VitrCollection:
    """Images (and optionally texts) indexed with a VITR model in a Qdrant collection.

    Args:
        name: Collection name (letters, digits, ``_ . -``).
        path: Directory of the embedded store (default: :func:`~vitr_qdrant.settings.default_data_dir`).
        location: ``":memory:"`` for qdrant-client's in-memory local mode.
        url, api_key: A Qdrant server or cluster.
        model: A :class:`VitrModel`, a model name or directory, or None for the bundled default.
        backend: ``"edge"`` (embedded default), ``"qdrant-local"``, ``"qdrant-remote"``, or an
            unopened :class:`~vitr_qdrant.connectors.StoreBackend`.
        settings: :class:`~vitr_qdrant.settings.Settings` (or a dict of them).
        index_keys: Payload keys to index for fast filtered searches: ``{"album": "keyword",
            "year": "integer"}``, or ``"key"`` / ``"key:kind"`` strings (kind ``keyword`` by
            default); created now where missing. Searches never create indexes: a filter on a key
            without one works, reading the payloads of the candidates it visits.
        **options: Backend options: ``shard_number``, ``replication_factor``,
            ``write_consistency_factor``, ``timeout`` (server); ``max_search_threads``
            (embedded); and how region vectors are stored (see
            :class:`~vitr_qdrant.connectors.CollectionSpec`): ``quantize_regions`` (int8 search
            copy), ``regions_datatype`` (``"turbo8"`` for about 5 KB an image) and
            ``regions_in_payload`` (a float16 copy that makes reranking faster, ~11 KB).

    Raises:
        FingerprintMismatchError: the collection was built with another model.
        StoreLockedError: the embedded store is already open (in this or another process).
    """

    def __init__(self, name: str, path: str | os.PathLike[str] | None = None, location: str | None = None,
                 url: str | None = None, api_key: str | None = None, model: VitrModel | str | None = None,
                 backend: str | StoreBackend | None = None, settings: Settings | dict | None = None,
                 index_keys: Mapping[str, str] | Sequence[str] | None = None, **options: Any):
        self.name = name
        self._closed, self._active, self._use = True, {}, threading.Condition()   # calls running, by thread
        self._writing = threading.Lock()   # adds one at a time: each report counts an image once
        for suffix, kept in ((TEXTS_SUFFIX, "the texts"), (UPGRADE_SUFFIX, "an upgrade in progress")):
            if isinstance(name, str) and name.endswith(suffix):
                raise InputError(f"collection names ending in {suffix!r} are kept for {kept} of the collection "
                                 f"{name[:-len(suffix)]!r}: choose another name")
        self.settings = Settings.create(settings)
        self.model = model if isinstance(model, VitrModel) else load_model(model)
        storage = {k: options.pop(k) for k in STORAGE_OPTIONS if k in options}
        if isinstance(backend, StoreBackend):
            if any(v is not None for v in (path, location, url, api_key)) or options:
                raise InputError("a backend instance already knows its store: drop path=/location=/url=/options")
            self._store = backend
        else:
            if path is None and location is None and url is None and backend != "qdrant-remote":
                path = default_store_path(backend, self.settings.resolved_data_dir())
            self._store = create_backend(path=path, location=location, url=url, api_key=api_key,
                                           backend=backend, **options)
        self._texts: StoreBackend | None = None
        try:
            self._spec = self._make_spec(name, **storage)   # a bad name or option closes the store too
            check_not_upgrading(self._store, name)
            self._store.open_collection(self._spec)
            self._store.ensure_payload_indexes(index_kinds(index_keys))
            warn_first_stage(self._store, self.model)
        except BaseException:
            self._store.close()
            raise
        self._closed = False

    def _make_spec(self, name: str, first_stage: bool = True, **storage: Any) -> CollectionSpec:
        return collection_spec(name, self.model, first_stage, **storage)

    # --- writing ----------------------------------------------------------------------------
    @_while_open
    def add_images(self, items: Any, ids: Sequence[int | str] | None = None, metadata: Any = None,
                   batch_size: int | None = None, progress: bool = True) -> AddReport:
        """Add images; bad items are reported, never raised.

        Args:
            items: One image or an iterable of: file paths (str/Path), directories (searched
                recursively for image files), http(s) URLs, encoded bytes, ``PIL.Image``,
                HxWx3 uint8 arrays.
            ids: One id (int, or str mapped to a UUIDv5) per item; default: a UUIDv5 of the image's
                sha256, so adding the same image again is a no-op.
            metadata: One dict for every item, or one dict (or None) per item; stored flat in the
                payload next to ``uri``, ``sha256``, ``width``, ``height`` (filterable). An
                image stored already is skipped when it comes without metadata, and rewritten
                when it brings metadata that differs from what is stored.
            batch_size: Images per batch (default: ``settings.batch_size``).
            progress: Show a progress bar.

        Returns:
            An :class:`AddReport`: ``added``, ``skipped``, ``failed`` ((item, reason) pairs), ``ids``.
            Everything added is durable when this returns.
        """
        with self._writing:
            return ingest.add_images(self._store, self.model, items, ids, metadata, self.settings,
                                     batch_size, progress)

    @_while_open
    def add_texts(self, texts: str | Sequence[str], ids: Sequence[int | str] | None = None,
                  metadata: Any = None) -> AddReport:
        """Add texts to the companion collection ``<name>__texts`` for :meth:`search_texts`."""
        with self._writing:
            return ingest.add_texts(self._text_store(), self.model, texts, ids, metadata)

    @_while_open
    def delete(self, ids: ItemId | Sequence[ItemId]) -> None:
        """Delete images by id: the ids given when adding, or the ids of hits; an id that names
        no stored item is ignored. A str is first your id; a UUID string that is none of your
        ids names the item added without an id under that UUID (as hits show it)."""
        self._store.delete(self._stored_ids(ids))

    @_while_open
    def create_payload_index(self, key: str, kind: str = "keyword") -> None:
        """Index payload ``key`` (kind: keyword, integer, float, bool, text, datetime, uuid), as
        ``index_keys`` does; filtered searches on it then skip reading whole payloads."""
        self._store.create_payload_index(key, kind)

    # --- reading ----------------------------------------------------------------------------
    @_while_open
    def search(self, text: str, limit: int = 10, filter: Any = None, mode: str | None = None,
               prefetch: int | None = 200, candidates: int = 50) -> list[Hit]:
        """Find images matching ``text``, best first.

        Args:
            text: The query, e.g. ``"red circle left of blue square"``.
            limit: Number of hits.
            filter: A dict (``{"category": "dog", "year": {"gte": 2020}}``) or a Qdrant ``models.Filter``.
            mode: ``"vitr"`` (fusion rerank), ``"late"`` (MaxSim) or ``"global"`` (CLIP baseline);
                None: ``vitr``, or ``global`` for a model without a trained head.
            prefetch: Stage 1 size N: the top N by the global vector and, in a collection with
                the model's first-stage vectors, the top N by those (filters applied); None: no
                stage 1, every image the filter lets through is ranked by MaxSim (exact, slower
                as the collection grows).
            candidates: Stage 2 size M (top M by MaxSim, reranked in ``vitr`` mode).

        Raises:
            InputError: empty query, ``limit <= 0`` or an unknown mode.
            HeadNotTrainedError: ``mode="vitr"`` with a model without a trained head.
        """
        _check_query(text, limit)
        return search.text_to_image(self._store, self.model, text, limit=limit, filter=filter, mode=mode,
                                    prefetch=prefetch, candidates=candidates)

    @_while_open
    def search_by_image(self, image: Any, limit: int = 10, filter: Any = None, prefetch: int | None = 200,
                        candidates: int = 50) -> list[Hit]:
        """Find images similar to ``image`` (global vector, then region MaxSim)."""
        _check_limit(limit)
        emb, _ = self._encode_query(image)
        return search.image_to_image(self._store, emb, limit=limit, filter=filter, prefetch=prefetch,
                                     candidates=candidates)

    @_while_open
    def search_texts(self, image: Any, limit: int = 10, filter: Any = None, mode: str | None = None,
                     prefetch: int | None = 200, candidates: int = 50) -> list[Hit]:
        """Find the texts (added with :meth:`add_texts`) that best describe ``image`` (none: no hits)."""
        _check_limit(limit)
        emb, size = self._encode_query(image)
        if not self._has_texts():   # a search creates nothing, not even an empty texts collection
            return []
        return search.image_to_text(self._text_store(), self.model, emb, size, limit=limit, filter=filter,
                                    mode=mode, prefetch=prefetch, candidates=candidates)

    @_while_open
    def get(self, ids: ItemId | Sequence[ItemId]) -> list[Record]:
        """The stored images among ``ids`` (missing ones are left out)."""
        return [Record(user_id(p.id, p.payload), p.payload) for p in self._store.retrieve(self._stored_ids(ids))]

    @_while_open
    def __len__(self) -> int:
        return self._store.count()

    @_while_open
    def info(self) -> dict[str, Any]:
        """Collection statistics and the model fingerprint."""
        texts = self._text_store().count() if self._has_texts() else 0
        return {"name": self.name, "backend": self._store.name, "images": len(self), "texts": texts,
                "location": str(getattr(self._store, "path", "") or ""),
                "model": self.model.fingerprint, "stored": self._store.read_metadata(self.name)}

    # --- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Flush and release the store (idempotent); waits for calls running in other threads,
        and later calls raise :class:`CollectionClosedError`. A collection dropped without
        ``close()`` releases its store when it is garbage-collected."""
        with self._use:
            self._closed = True
            self._use.wait_for(lambda: not set(self._active) - {threading.get_ident()})
        for store in (self._texts, self._store):
            if store is not None:
                store.close()
        self._texts = None

    def __enter__(self) -> "VitrCollection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VitrCollection({self.name!r}, backend={self._store.name!r}, model={self.model.cfg.name!r})"

    # --- helpers ----------------------------------------------------------------------------
    def _encode_query(self, image: Any) -> tuple[Any, tuple[int, int]]:
        """The query image's embeddings and size: loaded as ingest loads images (the URL policy,
        the caps), its error raised as such."""
        try:
            item = load_one(image, self.settings.load_cfg(self.model.backbone.image_size))
        except InputError as exc:   # ImageLoadError, FetchError, URLPolicyError: the same kind, said of the query
            raise type(exc)(f"cannot use the query image: {exc}") from exc
        return self.model.encode_images([item.image]), item.size

    def _stored_ids(self, ids: ItemId | Sequence[ItemId]) -> list[PointId]:
        """The point ids of the stored items whose id (as hits show it) is one of ``ids``, in order."""
        if isinstance(ids, (int, str, uuid.UUID)):
            ids = [ids]
        elif ids is None or isinstance(ids, (bytes, Mapping)) or not hasattr(ids, "__iter__"):
            raise InputError(f"ids must be an id (int or str) or a sequence of them, got {type(ids).__name__}")
        wanted = [user_key(i) for i in ids]
        own = {i: point_id(i) for i in wanted}
        raw = {i: _uuid_or_none(i) for i in wanted}
        asked = [pid for pid in [*own.values(), *raw.values()] if pid is not None]
        stored = {p.id: p.payload for p in self._store.retrieve(list(dict.fromkeys(asked)))}
        out: list[PointId] = []
        for i in dict.fromkeys(wanted):
            if own[i] in stored and stored[own[i]].get("external_id") == i:
                out.append(own[i])
            elif raw[i] in stored and stored[raw[i]].get("external_id") is None:
                out.append(raw[i])
        return out

    def _has_texts(self) -> bool:
        return self._texts is not None or self._store.read_metadata(self.name + TEXTS_SUFFIX) is not None

    def _text_store(self) -> StoreBackend:
        if self._texts is None:
            backend = sibling_store(self._store)
            try:
                backend.open_collection(self._make_spec(self.name + TEXTS_SUFFIX, first_stage=False))
            except BaseException:
                backend.close()
                raise
            self._texts = backend
        return self._texts


def check_not_upgrading(store: StoreBackend, name: str) -> None:
    """Refuse to open (and so create) ``name`` while an interrupted ``vitr upgrade`` holds its points."""
    if store.read_metadata(name + UPGRADE_SUFFIX) is not None:
        raise StoreError(f"an upgrade of collection {name!r} was interrupted and its points are in "
                         f"{name + UPGRADE_SUFFIX!r}: run `vitr upgrade -c {name}` to finish it")


def _check_query(text: Any, limit: int) -> None:
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"the query must be a non-empty string, got {text!r}")
    _check_limit(limit)


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise InputError(f"limit must be a positive int, got {limit!r}")


def _uuid_or_none(item_id: ItemId) -> str | None:
    """The canonical UUID string of ``item_id``, if it is one (the point id of an item added without an id)."""
    try:
        return str(uuid.UUID(item_id)) if isinstance(item_id, str) else None
    except ValueError:
        return None


def index_kinds(keys: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """``{key: kind}`` of the ``index_keys`` option: a dict, or ``"key"`` / ``"key:kind"`` strings."""
    if keys is None:
        return {}
    if isinstance(keys, Mapping):
        return {str(k): str(v) for k, v in keys.items()}
    pairs = (str(entry).partition(":") for entry in ([keys] if isinstance(keys, str) else keys))
    return {key: kind or "keyword" for key, _, kind in pairs}
