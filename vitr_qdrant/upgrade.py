"""``vitr upgrade``: give a collection its model's first-stage vectors from what it stores.

A collection made before its model had a first stage (or by another first stage) keeps only the
top N by the global vector in stage 1. Its points already hold everything a first-stage vector
is computed from (the region vectors), so no image is re-encoded: the points are copied, with
their new vectors, into ``<name>__upgrading``, the collection is made anew with the ``first``
vector and the points are copied back. Qdrant cannot add a named vector to a collection, hence
the two copies; an interrupted upgrade resumes where it stopped when run again (the points are
in one of the two collections at every moment).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from .connectors import STORAGE_OPTIONS, CollectionSpec, StoredPoint, StoreBackend
from .search import collection_spec
from .encoders import VitrModel
from .errors import CollectionNotFoundError, InputError
from .store_info import UPGRADE_SUFFIX, sibling_store

logger = logging.getLogger(__name__)
_PAGE = 256


def upgrade_collection(store: StoreBackend, name: str, model: VitrModel, progress: bool = True) -> int:
    """Make collection ``name`` of ``store`` (a backend with no collection open) one with
    ``model``'s first-stage vectors; returns the number of points copied (0: it had them already).

    Raises:
        InputError: ``model`` has no first stage.
        CollectionNotFoundError: neither the collection nor an interrupted upgrade of it exists.
        FingerprintMismatchError: the collection was built with another model.
    """
    if model.first_stage is None:
        raise InputError(f"model {model.cfg.name} has no first stage: there is nothing to upgrade to")
    spec = target = collection_spec(name, model)
    tmp_name = spec.name + UPGRADE_SUFFIX
    stored, pending = store.read_metadata(spec.name), store.read_metadata(tmp_name)
    if stored is None and pending is None:
        raise CollectionNotFoundError(f"no collection {spec.name!r} to upgrade")
    with sibling_store(store) as tmp:
        if stored is not None:
            store.open_collection(spec, create=False)
            target = _same_storage(target, store.spec)
        rebuilt = stored is None or store.spec.first_sha256 == target.first_sha256
        if rebuilt and pending is None:
            store.close()
            return 0
        if not rebuilt:   # copy 1: the points, with their new vectors, into <name>__upgrading
            tmp.drop_collection(tmp_name)   # a copy an earlier run did not finish
            tmp.open_collection(dataclasses.replace(target, name=tmp_name))
            _copy(store, tmp, model, f"upgrading {spec.name} (1/2)", progress)
            store.drop_collection(spec.name)
        else:             # copy 1 of an interrupted run is complete (the old collection was dropped after it)
            tmp.open_collection(dataclasses.replace(target, name=tmp_name), create=False)
            target = _same_storage(target, tmp.spec)
        store.open_collection(target)
        n = _copy(tmp, store, model, f"upgrading {spec.name} (2/2)", progress)
        tmp.drop_collection(tmp_name)
    store.close()
    logger.info("collection %s: first-stage vectors added to %d points", spec.name, n)
    return n


def _same_storage(target: CollectionSpec, stored: CollectionSpec) -> CollectionSpec:
    """``target`` with the storage options the collection was created with (a compact
    collection stays compact, its HNSW settings stay)."""
    return dataclasses.replace(target, **{k: getattr(stored, k) for k in STORAGE_OPTIONS})


def _copy(src: StoreBackend, dst: StoreBackend, model: VitrModel, what: str, progress: bool) -> int:
    """Every point of ``src`` into ``dst``, with ``model``'s first-stage vectors; the count."""
    n = 0
    with tqdm(total=src.count(), unit="pt", desc=what, disable=not progress) as bar:
        for page in _pages(src.iter_points(_PAGE, with_vectors=True)):
            dst.upsert(with_first_vectors(page, model))
            n += len(page)
            bar.update(len(page))
    dst.optimize()
    return n


def _pages(points: Iterator[StoredPoint]) -> Iterator[list[StoredPoint]]:
    page: list[StoredPoint] = []
    for p in points:
        page.append(p)
        if len(page) == _PAGE:
            yield page
            page = []
    if page:
        yield page


@torch.inference_mode()
def with_first_vectors(points: list[StoredPoint], model: VitrModel) -> list[StoredPoint]:
    """The points with the first-stage vectors of their stored regions (the region count of an
    image is the model's, so they stack)."""
    assert model.first_stage is not None   # checked by first_stage_spec
    regions = torch.from_numpy(np.stack([p.regions for p in points]).astype(np.float32)).to(model.device)
    first = model.first_stage.encode_regions(regions).float().cpu().numpy()
    return [dataclasses.replace(p, first_vector=f) for p, f in zip(points, first)]

