"""Collection schema, point and result records shared by every backend."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np

from ..errors import FingerprintMismatchError, InputError
from .ids import PointId

GLOBAL = "global"
REGIONS = "regions"
FIRST = "first"
METADATA_KEY = "vitr"
FORMAT_VERSION = 1
REGIONS_PAYLOAD_KEY = "_vitr_regions_f16"
RESERVED_PAYLOAD_KEYS = frozenset({"uri", "sha256", "width", "height", "external_id", REGIONS_PAYLOAD_KEY})
REGION_DATATYPES = ("float32", "float16", "turbo8")
STORAGE_OPTIONS = ("quantize_regions", "regions_datatype", "regions_in_payload", "hnsw_m", "hnsw_ef_construct")
"""The options of :class:`CollectionSpec` a user sets (``VitrCollection(..., option=value)``): fixed
when a collection is created, stored with it, and read back on every open (a reopen uses what was
stored; a collection stored before an option existed keeps that option's default, which it was
built with). Their defaults are the dataclass's own, below: the one place."""
FIRST_STAGE_OPTIONS = ("first_dim", "first_sha256")
"""Fixed when a collection is created, like the storage options, and read back on every open: a
collection made before first-stage vectors existed has neither (its stage 1 is ``global`` alone)."""
RESCORE = True
"""Queries on quantized ``regions`` (``quantize_regions``) rescore the points they return with the
original vectors: the same recall, exact scores and order (without it, 9 of 100 top-10 lists were
in the exact order on the data measured for ``quantize_regions``; with it, 69), at no measured cost."""
COMPACT_STORAGE = {"regions_datatype": "turbo8", "regions_in_payload": False}  # about 5 KB an image
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection stores and how it is indexed.

    Attributes:
        name: Collection name (letters, digits, ``_ . -``; it is also a directory name).
        global_dim: Size D of the ``global`` vector.
        region_dim: Size d of each ``regions`` vector (the count per point may vary).
        fingerprint: The model fingerprint (``name``, ``global_dim``, ``region_dim``,
            ``n_regions``, ``head_trained``, ``weights_sha256``); stored at creation and
            compared on every later open. None skips the check.
        quantize_regions: An int8 scalar-quantized copy of ``regions``, kept in RAM next to the
            originals, that stage 2's MaxSim scores with; the points it returns are rescored with
            the originals (:data:`RESCORE`). It changes results: on 3,000 random points (16 x 64
            regions, 8 query tokens) recall@10 against the exact MaxSim was 0.97 after a prefetch
            of 100 and 0.94 over every point, and it was not faster (3.3 vs 1.5 ms a query, the
            embedded engine on 2 busy cores). It only pays where the originals are not in RAM.
        regions_datatype: Storage type of the region vectors: ``float32``, ``float16``, or
            ``turbo8`` (Qdrant's TurboQuant 8-bit storage: about 1 byte a dimension, the floats
            are not kept; the compact choice, with ``regions_in_payload=False``).
        regions_in_payload: Also keep a float16 copy of ``regions`` in the payload, so a query
            returns candidates' regions fast (the engines' Python bindings take ~1 ms per point
            to hand back a 64x64 multivector; the payload copy takes ~0.05 ms).
        first_dim: Size of the ``first`` vector (dense, cosine, HNSW): the model's first-stage
            vector, searched in stage 1 next to ``global``. None: the collection has none.
        first_sha256: The hash of the first stage that wrote the ``first`` vectors; a query's
            first-stage vector is only compared with vectors of the same first stage.
        hnsw_m: HNSW ``m`` (edges a node) of ``global`` and ``first``, the vectors stage 1 searches
            (``regions`` always has ``m=0``: it only reranks). Larger: better stage-1 recall, a
            larger index, slower builds.
        hnsw_ef_construct: HNSW ``ef_construct`` (the candidate list while building) of
            ``global`` and ``first``. Larger: a better graph, slower builds.
        model_source: Where the model was loaded from (a directory), recorded at creation so
            that a collection opened without a model finds it; not compared on open.
    """

    name: str
    global_dim: int
    region_dim: int
    fingerprint: Mapping[str, Any] | None = None
    quantize_regions: bool = False
    regions_datatype: Literal["float32", "float16", "turbo8"] = "float32"
    regions_in_payload: bool = True
    first_dim: int | None = None
    first_sha256: str | None = None
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    model_source: str | None = None

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise InputError(f"collection name {self.name!r} must match {_NAME_RE.pattern}")
        for key in ("global_dim", "region_dim", "hnsw_m", "hnsw_ef_construct"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise InputError(f"{key} must be a positive integer, got {value!r}")
        if self.regions_datatype not in REGION_DATATYPES:
            raise InputError(f"regions_datatype must be one of {REGION_DATATYPES}, got {self.regions_datatype!r}")
        if self.first_dim is not None and int(self.first_dim) <= 0:
            raise InputError(f"first_dim must be positive or None, got {self.first_dim}")
        if self.quantize_regions and self.regions_datatype == "turbo8":
            raise InputError("turbo8 regions are quantized already: drop quantize_regions")

    def schema_dict(self) -> dict[str, Any]:
        """Return the schema part that must match on reopen (not the tuning knobs)."""
        return {"global_dim": int(self.global_dim), "region_dim": int(self.region_dim)}

    def metadata(self) -> dict[str, Any]:
        """Return the JSON record stored with the collection."""
        meta = {"format": FORMAT_VERSION, "fingerprint": _jsonable(self.fingerprint),
                "schema": self.schema_dict(),
                "options": {k: getattr(self, k) for k in (*STORAGE_OPTIONS, *FIRST_STAGE_OPTIONS)}}
        return meta if self.model_source is None else {**meta, "model_source": self.model_source}

    def with_stored_options(self, stored: Mapping[str, Any]) -> "CollectionSpec":
        """Return this spec with the storage options and the first stage the collection was
        created with (none, for a collection made before first-stage vectors existed)."""
        given = stored.get("options") or {}
        defaults = {f.name: f.default for f in dataclasses.fields(CollectionSpec)}
        options = {k: given.get(k, defaults[k]) for k in STORAGE_OPTIONS}   # missing: stored before the option
        first = {k: given.get(k) for k in FIRST_STAGE_OPTIONS}
        return dataclasses.replace(self, **options, **first)


@dataclass
class StoredPoint:
    """One point as written or read back: id, vectors and payload."""

    id: PointId
    global_vector: np.ndarray | None = None
    regions: np.ndarray | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    first_vector: np.ndarray | None = None


@dataclass
class Candidate:
    """One search result.

    Attributes:
        id: Point id (int or UUID string).
        score: Final score: rerank if a rerank ran, else the MaxSim (or global) score.
        stage_scores: ``{"global": cosine, "late": MaxSim, "rerank": ...}``, the stages that ran.
        payload: Stored payload.
        global_vector: Stored ``global`` vector (D,), when requested.
        regions: Stored ``regions`` multivector (R, d), when requested: float32, or float16 when
            read from the payload copy (``regions_in_payload``), its stored precision.
        detail: What the rerank returned for this candidate besides its score, if anything.
    """

    id: PointId
    score: float
    stage_scores: dict[str, float]
    payload: dict[str, Any]
    global_vector: np.ndarray | None = None
    regions: np.ndarray | None = None
    detail: Any = None


@dataclass(frozen=True)
class QueryPlan:
    """A backend-level query: stage 1 on ``global`` (on ``first`` instead when ``first_vector``
    is given), optional stage 2 MaxSim on ``regions`` (``prefetch_limit``
    None with token vectors: no first stage, MaxSim over every point)."""

    global_vector: np.ndarray
    token_vectors: np.ndarray | None
    limit: int
    prefetch_limit: int | None
    filter: Any = None  # a qdrant_client ``models.Filter`` or None
    with_regions: bool = False
    first_vector: np.ndarray | None = None


def make_payload(uri: str | None = None, sha256: str | None = None, width: int | None = None,
                 height: int | None = None, metadata: Mapping[str, Any] | None = None,
                 external_id: int | str | None = None) -> dict[str, Any]:
    """Build a point payload: the reserved image fields plus the user's metadata, flat.

    User metadata sits at the top level so simple filters read ``{"category": "dog"}``. Its
    values must be what a Qdrant payload holds (see :func:`payload_value`); numpy scalars become
    Python numbers and tuples lists.

    Raises:
        InputError: ``metadata`` is not a dict, a key collides with a reserved key or is not a
            string, or a value cannot be stored (the message names the key).
    """
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InputError(f"metadata must be a dict (or None), got {type(metadata).__name__}")
    payload: dict[str, Any] = {}
    for key, value in (("uri", uri), ("sha256", sha256), ("width", width), ("height", height),
                       ("external_id", external_id)):
        if value is not None:
            payload[key] = value
    for key, value in (metadata or {}).items():
        if not isinstance(key, str):
            raise InputError(f"metadata keys must be strings, got {key!r}")
        if key in RESERVED_PAYLOAD_KEYS:
            raise InputError(f"metadata key {key!r} is reserved; reserved: {sorted(RESERVED_PAYLOAD_KEYS)}")
        payload[key] = payload_value(key, value)
    return payload


_INT64 = (-2**63, 2**63 - 1)


def payload_value(key: str, value: Any) -> Any:
    """``value`` as a payload value: None, bool, str, an int of 64 bits, a finite float, or lists
    and dicts (str keys) of those; numpy scalars become Python numbers, tuples lists.

    Raises:
        InputError: anything else (NaN, datetime, set, objects...), naming ``key`` and what to pass.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InputError(f"metadata {key!r}: {value} does not fit a 64-bit payload integer; store it as a str")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"metadata {key!r}: {value} is not a payload number (only finite numbers are "
                             f"stored); leave the key out or store None")
        return value
    if isinstance(value, (list, tuple)):
        return [payload_value(f"{key}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise InputError(f"metadata {key!r}: the keys of a nested dict must be strings")
        return {k: payload_value(f"{key}.{k}", v) for k, v in value.items()}
    hint = {"datetime": "store its .isoformat() string (Qdrant filters datetimes as RFC 3339 strings)",
            "date": "store its .isoformat() string", "set": "pass a list", "frozenset": "pass a list"}
    kind = type(value).__name__
    raise InputError(f"metadata {key!r}: a {kind} is not a payload value; "
                     + hint.get(kind, "use str, int, float, bool, None, or lists and dicts of them"))


def check_metadata(collection: str, stored: Mapping[str, Any], spec: CollectionSpec) -> None:
    """Raise FingerprintMismatchError if ``spec`` does not match the stored record."""
    stored_fp = stored.get("fingerprint")
    given_fp = _jsonable(spec.fingerprint)
    if spec.fingerprint is not None and stored_fp is not None and stored_fp != given_fp:
        raise FingerprintMismatchError(collection, stored_fp, given_fp)
    if stored.get("schema") != spec.schema_dict():
        raise FingerprintMismatchError(collection, {"fingerprint": stored_fp, **stored.get("schema", {})},
                                       {"fingerprint": given_fp, **spec.schema_dict()})


def _jsonable(value: Any) -> Any:
    """Normalise a fingerprint to what JSON round-trips to (tuples -> lists, numpy -> python)."""
    if value is None:
        return None
    return json.loads(json.dumps(dict(value), sort_keys=True, default=_default))


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"fingerprint value {obj!r} is not JSON-serialisable")
