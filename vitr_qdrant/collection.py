"""VitrCollection: relation-aware image search (and image-to-text) on one Qdrant collection."""
from __future__ import annotations

import functools
import logging
import os
import threading
import uuid
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from . import search
from .ingest import pipeline as ingest
from .search import collection_spec, warn_first_stage
from .connectors import (STORAGE_OPTIONS, CollectionSpec, PointId, StoreBackend, build_filter, create_backend,
                         default_store_path, make_payload, point_id)
from .connectors.ids import user_key
from .connectors.schema import RESERVED_PAYLOAD_KEYS
from .encoders import TextQuery, VitrModel, load_model
from .errors import CollectionClosedError, CollectionNotFoundError, InputError, ModelNotFoundError, StoreError
from .sources.inputs import load_one
from .params import CANDIDATES, PREFETCH, SearchParams
from .results import AddReport, Hit, ItemId, Record, user_id
from .settings import Settings
from .store_info import TEXTS_SUFFIX, UPGRADE_SUFFIX, image_collections, sibling_store

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
        model: A :class:`VitrModel`, a model name or directory, or None: the model the
            collection was built with (its fingerprint names it; bundled, or at the directory
            recorded when it was created), and for a new collection the bundled default.
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
            :class:`~vitr_qdrant.connectors.CollectionSpec`; fixed at creation, stored, read back
            on every open): ``regions_datatype`` (``"turbo8"`` for about 5 KB an image),
            ``regions_in_payload`` (a float16 copy that makes reranking faster, ~11 KB),
            ``quantize_regions`` (an int8 copy stage 2 scores with), and ``hnsw_m`` /
            ``hnsw_ef_construct`` (the stage-1 HNSW index; default 16 / 100).
        create: True (default): open the collection, creating it when missing (Chroma's
            ``get_or_create_collection``, the one-line quickstart). False: open an existing one
            only (Chroma's ``get_collection``, Qdrant's explicit create): a mistyped name raises
            :class:`CollectionNotFoundError` naming the collections there, as the CLI does.

    Raises:
        CollectionNotFoundError: ``create=False`` and no collection ``name`` (checked before any model loads).
        FingerprintMismatchError: the collection was built with another model.
        ModelNotFoundError: ``model=None`` and the collection's model is neither bundled nor at
            its recorded directory (the message names what to pass).
        StoreLockedError: the embedded store is already open (in this or another process).
        InputError: a bad name or option (checked before any model loads).
    """

    def __init__(self, name: str, path: str | os.PathLike[str] | None = None, location: str | None = None,
                 url: str | None = None, api_key: str | None = None, model: VitrModel | str | None = None,
                 backend: str | StoreBackend | None = None, settings: Settings | dict | None = None,
                 index_keys: Mapping[str, str] | Sequence[str] | None = None, create: bool = True,
                 **options: Any):
        self.name = name
        self._closed, self._active, self._use = True, {}, threading.Condition()   # calls running, by thread
        self._writing = threading.Lock()   # adds one at a time: each report counts an image once
        for suffix, kept in ((TEXTS_SUFFIX, "the texts"), (UPGRADE_SUFFIX, "an upgrade in progress")):
            if isinstance(name, str) and name.endswith(suffix):
                raise InputError(f"collection names ending in {suffix!r} are kept for {kept} of the collection "
                                 f"{name[:-len(suffix)]!r}: choose another name")
        self.settings = Settings.create(settings)
        storage = {k: options.pop(k) for k in STORAGE_OPTIONS if k in options}
        CollectionSpec(name, 1, 1, **storage)   # a bad name or storage option: an InputError before anything opens
        kinds = index_kinds(index_keys)
        self._store = _create_store(self.settings, path, location, url, api_key, backend, options)
        self._texts: StoreBackend | None = None
        try:
            check_not_upgrading(self._store, name)
            stored = self._store.read_metadata(name)
            if stored is None and not create:
                raise CollectionNotFoundError(
                    f"no collection {name!r} in this {self._store.name} store (nothing was created); collections "
                    f"there: {', '.join(image_collections(self._store)) or 'none'}; pass create=True to create it")
            self.model = model if isinstance(model, VitrModel) else load_model(model or recorded_model(name, stored))
            self._spec = self._make_spec(name, **storage)
            self._store.open_collection(self._spec, create=create)
            self._store.ensure_payload_indexes(kinds)
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
    def encode_query(self, text: str) -> TextQuery:
        """``text`` encoded once by the collection's model, for several searches of it (other
        filters, pages, modes) without encoding it again: ``col.search(col.encode_query(t))``.
        Its ``unknown_words`` are the words the model does not know."""
        return self.model.encode_queries([check_query(text)])[0]

    @_while_open
    def search(self, text: str | TextQuery, limit: int = 10, filter: Any = None, mode: str | None = None,
               prefetch: int | None = PREFETCH, candidates: int = CANDIDATES, *, offset: int = 0,
               score_threshold: float | None = None, params: SearchParams | None = None) -> list[Hit]:
        """Find images matching ``text``, best first.

        Args:
            text: The query, e.g. ``"dog left of cat"``, or one made by :meth:`encode_query`.
            limit: Number of hits (1..1000).
            filter: A dict (``{"category": "dog", "year": {"gte": 2020}}``) or a Qdrant ``models.Filter``.
            mode: ``"vitr"`` (fusion rerank), ``"late"`` (MaxSim) or ``"global"`` (CLIP baseline);
                None: ``vitr``, or ``global`` for a model without a trained head.
            prefetch: Stage 1 size N: the top N by the model's first-stage vector in a collection
                that has them, else by the global vector (filters applied); None: no
                stage 1, every image the filter lets through is ranked by MaxSim (exact, slower
                as the collection grows).
            candidates: Stage 2 size M (top M by MaxSim, reranked in ``vitr`` mode).
            offset: Hits to skip, for paging (``offset=10, limit=10``: hits 11-20).
            score_threshold: Leave out hits scoring below this (in the mode's scale).
            params: A :class:`~vitr_qdrant.params.SearchParams` instead of the arguments above.

        Each hit's ``probability`` is the model's calibrated probability that the query holds for
        the image (None for an uncalibrated model or mode).

        Raises:
            InputError: empty query, a bad limit, offset, stage size, threshold, filter or mode
                (before any work).
            HeadNotTrainedError: ``mode="vitr"`` with a model without a trained head.
        """
        params = params or SearchParams(limit, offset, filter, mode, prefetch, candidates, score_threshold)
        return search.text_to_image(self._store, self.model, check_query(text), params)

    @_while_open
    def search_batch(self, texts: Sequence[str | TextQuery], limit: int = 10, filter: Any = None, mode: str | None = None,
                     prefetch: int | None = PREFETCH, candidates: int = CANDIDATES, *, offset: int = 0,
                     score_threshold: float | None = None, params: SearchParams | None = None) -> list[list[Hit]]:
        """:meth:`search` for several queries: one model call encodes them all, then each runs its
        stages; returns one hit list per text, in order (arguments as for :meth:`search`)."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InputError(f"texts must be a list of query strings, got {type(texts).__name__}")
        params = params or SearchParams(limit, offset, filter, mode, prefetch, candidates, score_threshold)
        texts = [check_query(t) for t in texts]
        return search.texts_to_images(self._store, self.model, texts, params) if texts else []

    @_while_open
    def search_by_image(self, image: Any, limit: int = 10, filter: Any = None, prefetch: int | None = PREFETCH,
                        candidates: int = CANDIDATES, *, offset: int = 0, score_threshold: float | None = None,
                        params: SearchParams | None = None) -> list[Hit]:
        """Find images similar to ``image`` (global vector, then region MaxSim; scores are MaxSim,
        no probability)."""
        params = params or SearchParams(limit, offset, filter, None, prefetch, candidates, score_threshold)
        emb, _ = self._encode_query(image)
        return search.image_to_image(self._store, emb, params)

    @_while_open
    def search_texts(self, image: Any, limit: int = 10, filter: Any = None, mode: str | None = None,
                     prefetch: int | None = PREFETCH, candidates: int = CANDIDATES, *, offset: int = 0,
                     score_threshold: float | None = None, params: SearchParams | None = None) -> list[Hit]:
        """Find the texts (added with :meth:`add_texts`) that best describe ``image`` (none: no hits)."""
        params = params or SearchParams(limit, offset, filter, mode, prefetch, candidates, score_threshold)
        emb, size = self._encode_query(image)
        if not self._has_texts():   # a search creates nothing, not even an empty texts collection
            return []
        return search.image_to_text(self._text_store(), self.model, emb, size, params)

    @_while_open
    def get(self, ids: ItemId | Sequence[ItemId]) -> list[Record]:
        """The stored images among ``ids`` (missing ones are left out), in the order asked."""
        return [Record(user_id(p.id, p.payload), p.payload) for p in self._store.retrieve(self._stored_ids(ids))]

    def scroll(self, filter: Any = None, limit: int | None = None, offset: int | None = None,
               batch_size: int = 256) -> Iterator[Record]:
        """Every stored image (matching ``filter``) in a stable order (by point id), read
        ``batch_size`` at a time; ``offset`` skips that many first, ``limit`` stops after that many.
        Items added or deleted while iterating may or may not be seen."""
        flt = build_filter(filter)
        for name, value in (("limit", limit), ("offset", offset)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InputError(f"{name} must be an int >= 0 (or None), got {value!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        start, stop = offset or 0, None if limit is None else (offset or 0) + limit
        points = islice(self._store.iter_points(batch_size, flt), start, stop)
        return (Record(user_id(p.id, p.payload), p.payload) for p in points)

    @_while_open
    def count(self, filter: Any = None) -> int:
        """The number of stored images matching ``filter`` (all: ``len(col)``); exact."""
        return self._store.count(build_filter(filter))

    @_while_open
    def set_metadata(self, ids: ItemId | Sequence[ItemId], metadata: Mapping[str, Any], replace: bool = False) -> int:
        """Update the metadata of stored images without re-encoding them.

        Args:
            ids: Ids as :meth:`get` takes them (ids that name no stored item are ignored).
            metadata: Keys and values to set (what ``add_images`` takes as metadata).
            replace: False (default): merge, keys not named keep their values. True: the
                metadata becomes exactly ``metadata`` (other user keys are removed; ``uri``,
                ``sha256``, ``width``, ``height`` stay).

        Returns:
            How many stored items were updated.
        """
        payload = make_payload(metadata=metadata)   # reserved keys and unstorable values: an InputError
        stored = self._store.retrieve(self._stored_ids(ids))
        if replace:   # per item: its own user keys that the new metadata does not name
            for p in stored:
                stale = [k for k in p.payload if k not in RESERVED_PAYLOAD_KEYS and k not in payload]
                self._store.set_payload([p.id], payload, stale)
        elif stored and payload:
            self._store.set_payload([p.id for p in stored], payload)
        return len(stored)

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

    def drop(self) -> None:
        """Delete this collection, its texts companion and their files, then close it; what it
        held cannot be recovered."""
        if self._has_texts():
            self._text_store().drop_collection(self.name + TEXTS_SUFFIX)
        self._store.drop_collection(self.name)
        self._store.drop_collection(self.name + UPGRADE_SUFFIX)   # none, unless an upgrade was interrupted
        logger.info("dropped collection %s", self.name)
        self.close()

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
        elif not isinstance(ids, Iterable) or isinstance(ids, (bytes, Mapping)):
            raise InputError(f"ids must be an id (int or str) or a list of them, got {type(ids).__name__}")
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


def check_query(text: Any) -> Any:
    """``text`` if it is a usable query (a non-empty string or an encoded query), else an InputError."""
    if isinstance(text, TextQuery):
        return text
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"the query must be a non-empty string, got {text!r}")
    return text


def _create_store(settings: Settings, path: Any, location: str | None, url: str | None, api_key: str | None,
                  backend: str | StoreBackend | None, options: dict[str, Any]) -> StoreBackend:
    """The (unopened) backend the arguments of :class:`VitrCollection` name."""
    if isinstance(backend, StoreBackend):
        if any(v is not None for v in (path, location, url, api_key)) or options:
            raise InputError("a backend instance already knows its store: drop path=/location=/url=/options")
        return backend
    if path is None and location is None and url is None and backend != "qdrant-remote":
        path = default_store_path(backend, settings.resolved_data_dir())
    return create_backend(path=path, location=location, url=url, api_key=api_key, backend=backend, **options)


def recorded_model(collection: str, stored: Mapping[str, Any] | None) -> str | None:
    """The model to open ``collection`` with when none is given: its recorded directory if it
    is still there, else the bundled model of its fingerprint's name; None for a new collection."""
    from .encoders.factory import WEIGHTS_DIR
    from .encoders.model_dir import WEIGHTS_FILE

    name = ((stored or {}).get("fingerprint") or {}).get("name")
    if stored is None or not name:
        return None
    source = stored.get("model_source")
    if source and (Path(source) / WEIGHTS_FILE).is_file():
        return source
    if (WEIGHTS_DIR / name / WEIGHTS_FILE).is_file():
        return name
    where = f" (it was loaded from {source}, which is gone)" if source else ""
    raise ModelNotFoundError(
        f"collection {collection!r} was built with model {name!r}{where}, which is not bundled: pass "
        f"model='path/to/{name}' (its model directory) or a loaded model, or `--model DIR` on the command line")


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
