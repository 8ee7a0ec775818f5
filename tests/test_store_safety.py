"""The embedded store under trouble: a full disk (simulated here; a real one in test_reliability.py),
locks on failure paths, missing or damaged sidecars and stores, reads that never write, declared
payload indexes, and index rebuilds of bounded size."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

import vitr_qdrant as vq
from vitr_qdrant.cli import main
from vitr_qdrant.connectors import CollectionSpec, StoredPoint, create_backend
from vitr_qdrant.connectors import disk as disk_module
from vitr_qdrant.connectors.edge import META_FILE, SEGMENT_KB

QUERY = "red circle left of blue square"


@pytest.fixture()
def stored(tmp_path, tiny_model, scene_images):
    """A closed store holding collection ``c`` with six scenes."""
    with vq.VitrCollection("c", path=tmp_path / "store", model=tiny_model) as col:
        ids = col.add_images(scene_images[:6], metadata=[{"i": i} for i in range(6)], progress=False).ids
    return tmp_path / "store", ids


def files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_reads_never_write(stored, tiny_model, scene_images):
    path, ids = stored
    with vq.VitrCollection("c", path=path, model=tiny_model) as col:
        before = files(path)
        for k in range(30):   # 30 new filter keys: no index, no file touched
            assert col.search(QUERY, limit=3, filter={f"key{k}": "x"}) == []
        assert len(col.search(QUERY, limit=6, filter={"i": {"gte": 3}})) == 3
        col.search_by_image(scene_images[0], limit=2)
        col.search_texts(scene_images[0], limit=1)   # no texts collection: nothing is created for it
        col.get(ids), len(col), col.info()
        assert files(path) == before and col._store.payload_indexes() == {}
    assert not (path / "c__texts").exists()


def test_payload_indexes_only_where_declared(stored, tiny_model, scene_images, tmp_path):
    path, _ = stored
    with vq.VitrCollection("c", path=path, model=tiny_model, index_keys={"i": "integer"}) as col:
        assert col._store.payload_indexes() == {"i": "integer"}
        col.create_payload_index("album")
        assert col._store.payload_indexes() == {"i": "integer", "album": "keyword"}
    with vq.VitrCollection("c", path=path, model=tiny_model, index_keys=["year:integer", "tag"]) as col:
        assert col._store.payload_indexes() == {"i": "integer", "album": "keyword", "year": "integer",
                                                "tag": "keyword"}
        with pytest.raises(vq.InputError, match="unknown payload index kind"):
            col.create_payload_index("x", "colour")
    from vitr_qdrant.encoders import save_model

    model_dir = str(save_model(tiny_model, tmp_path / "model"))
    folder = tmp_path / "imgs"
    folder.mkdir()
    scene_images[0].save(folder / "a.png")
    args = [str(folder), "-c", "cli", "--path", str(tmp_path / "s2"), "--model", model_dir, "--no-progress"]
    assert main(["index", *args, "--index-key", "kind", "--index-key", "year:integer"]) == 0
    with vq.VitrCollection("cli", path=tmp_path / "s2", model=tiny_model) as col:
        assert col._store.payload_indexes() == {"kind": "keyword", "year": "integer"}


def test_a_missing_sidecar_is_an_error_never_an_adoption(stored, tiny_model, capsys):
    path, _ = stored
    (path / "c" / META_FILE).unlink()
    other = vq.create_model("vitr-tiny-test", device="cpu")   # another model: must not take the vectors
    for model in (other, tiny_model):
        with pytest.raises(vq.StoreCorruptError, match=f"has data but no {META_FILE}.*Restore .*vitr index"):
            vq.VitrCollection("c", path=path, model=model)
    assert not (path / "c" / META_FILE).exists()                 # nothing was written in its place
    assert main(["info", "-c", "c", "--path", str(path)]) == 1
    assert f"no {META_FILE}" in capsys.readouterr().err


def test_an_unreadable_sidecar_names_the_file(stored, tiny_model):
    path, _ = stored
    meta = path / "c" / META_FILE
    meta.write_text(meta.read_text()[:20])
    with pytest.raises(vq.StoreCorruptError, match=f"sidecar {meta} cannot be read"):
        vq.VitrCollection("c", path=path, model=tiny_model)
    meta.write_text(json.dumps(["not", "a record"]))
    with pytest.raises(vq.StoreCorruptError, match="not the record of a vitr-qdrant collection"):
        vq.VitrCollection("c", path=path, model=tiny_model)


def test_a_damaged_store_names_the_collection_and_the_way_back(stored, tiny_model):
    path, _ = stored
    for wal in (path / "c" / "shard" / "wal").glob("open-*"):
        with open(wal, "r+b") as fh:
            fh.write(b"garbage!" * 8)
    for _ in range(2):   # the lock is released: the second try says the same, not "already open"
        with pytest.raises(vq.StoreCorruptError, match=r"collection 'c' at .* is damaged.*WAL.*vitr index"):
            vq.VitrCollection("c", path=path, model=tiny_model)


def test_damage_found_while_reading_is_said_too(stored, tiny_model):
    path, ids = stored
    for page in (path / "c" / "shard" / "segments").glob("*/payload_storage/page_0.dat"):
        os.truncate(page, 100)
    with pytest.raises(vq.StoreCorruptError, match="collection 'c' .* is damaged"):
        with vq.VitrCollection("c", path=path, model=tiny_model) as col:
            col.get(ids)


def test_the_lock_is_released_on_every_failure_path(stored, tiny_model, monkeypatch):
    path, _ = stored
    import vitr_qdrant.connectors.locking as locking

    def no_room(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(locking.os, "write", no_room)              # the pid cannot be written
    with vq.VitrCollection("c", path=path, model=tiny_model) as col:
        assert len(col) == 6
    monkeypatch.undo()
    with pytest.raises(vq.FingerprintMismatchError):                 # a failure after the lock was taken
        vq.VitrCollection("c", path=path, model=vq.create_model("vitr-tiny-test", device="cpu"))
    with vq.VitrCollection("c", path=path, model=tiny_model) as col:  # this process can reopen its own store
        assert len(col) == 6


def test_no_room_is_a_store_full_error_before_anything_is_written(stored, tiny_model, scene_images, monkeypatch):
    path, ids = stored
    real = disk_module.shutil.disk_usage
    free = {"bytes": None}

    def usage(where):
        du = real(where)
        return du if free["bytes"] is None else du._replace(free=free["bytes"])

    monkeypatch.setattr(disk_module.shutil, "disk_usage", usage)
    with vq.VitrCollection("c", path=path, model=tiny_model) as col:
        free["bytes"] = disk_module.MARGIN + 1000   # the headroom, and too little for two more points
        with pytest.raises(vq.StoreFullError, match="free on the disk of .*nothing was written"):
            col.add_images(scene_images[6:8], progress=False)
        free["bytes"] = disk_module.MARGIN - 1
        with pytest.raises(vq.StoreFullError, match="deleting 1 points"):
            col.delete(ids[0])
        assert len(col) == 6
        free["bytes"] = None
        assert col.add_images(scene_images[6:8], progress=False).added == 2
    free["bytes"] = 1000
    with pytest.raises(vq.StoreFullError, match="opening collection 'c'"):
        vq.VitrCollection("c", path=path, model=tiny_model)
    free["bytes"] = None
    with vq.VitrCollection("c", path=path, model=tiny_model) as col:   # reopens: the lock went with the error
        assert len(col) == 8


def test_rebuilds_come_every_optimize_every_points_and_segments_are_capped(tmp_path, monkeypatch):
    from vitr_qdrant.connectors.edge import EdgeBackend

    calls = []
    monkeypatch.setattr(EdgeBackend, "optimize", lambda self: calls.append(1) or setattr(self, "_pending", 0))
    rng = np.random.default_rng(0)
    with create_backend(path=tmp_path, optimize_every=10) as b:
        b.open_collection(CollectionSpec("c", 4, 2))
        for start in range(0, 100, 10):
            b.upsert([StoredPoint(i, rng.normal(size=4), rng.normal(size=(2, 2))) for i in range(start, start + 10)])
    assert len(calls) == 10            # linear: not fewer and fewer, longer and longer rebuilds
    config = json.loads((tmp_path / "c" / "shard" / "edge_config.json").read_text())
    assert config["optimizers"]["max_segment_size"] == SEGMENT_KB
