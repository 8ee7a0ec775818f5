"""Unit tests of the connector helpers: ids, filters, factory, retries, payload."""
from __future__ import annotations

import uuid

import pytest
import qdrant_edge as qe
from qdrant_client import models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import UnexpectedResponse

from vitr_qdrant.connectors import (build_filter, create_backend, default_data_dir, default_store_path,
                                    make_payload, point_id)
from vitr_qdrant.connectors.edge_filters import to_edge_filter
from vitr_qdrant.connectors.client import is_transient
from vitr_qdrant.errors import StoreError
from vitr_qdrant.connectors.retry import MAX_WAIT_S, RetryPolicy, call_with_retry

SHA = "ab" * 32


def test_point_ids_are_stable_and_typed():
    assert point_id(7) == 7
    assert point_id("cat.jpg") == point_id("cat.jpg") != point_id("dog.jpg")
    assert uuid.UUID(point_id("cat.jpg")).version == 5
    assert point_id(sha256=SHA) == point_id(sha256=SHA.upper()) != point_id(SHA)
    u = uuid.uuid4()
    assert point_id(u) == point_id(str(u)) != str(u)   # a UUID id is the id its string is
    for bad in (-1, 2**64, True, "", 1.5):
        with pytest.raises(ValueError):
            point_id(bad)
    with pytest.raises(ValueError, match="either a user id or the sha256"):
        point_id()
    with pytest.raises(ValueError, match="hex digest"):
        point_id(sha256="xyz")


def test_build_filter_shapes():
    f = build_filter({"color": "red", "n": [1, 2], "size": {"gte": 1, "lt": 5}, "ok": True, "w": 0.5})
    conds = {c.key: c for c in f.must}
    assert conds["color"].match == models.MatchValue(value="red")
    assert conds["n"].match == models.MatchAny(any=[1, 2])
    assert conds["size"].range == models.Range(gte=1.0, lt=5.0)
    assert conds["w"].range == models.Range(gte=0.5, lte=0.5)
    passthrough = models.Filter(must=[])
    assert build_filter(passthrough) is passthrough and build_filter(None) is None and build_filter({}) is None
    for bad in ({"a": None}, {"a": []}, {"a": {"between": 1}}, {"a": [1.5]}):
        with pytest.raises(ValueError, match="'a'"):
            build_filter(bad)
    with pytest.raises(ValueError, match="dict or a qdrant_client"):
        build_filter([("a", 1)])


def test_edge_filter_conversion():
    flt = models.Filter(
        must=[models.FieldCondition(key="a", match=models.MatchAny(any=["x", "y"])),
              models.HasIdCondition(has_id=[1, "6f1c3c1e-0b7a-5d43-9a52-3e1f6a0c9d21"])],
        should=models.FieldCondition(key="b", range=models.Range(gt=1)),
        must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key="c")),
                  models.Filter(must=[models.FieldCondition(key="d", match=models.MatchExcept(**{"except": [3]}))])])
    out = to_edge_filter(flt)
    assert isinstance(out, qe.Filter) and len(out.must) == 2 and len(out.must_not) == 2
    assert to_edge_filter(None) is None
    geo = models.FieldCondition(key="g", geo_radius=models.GeoRadius(
        center=models.GeoPoint(lon=0, lat=0), radius=1.0))
    with pytest.raises(ValueError, match="geo"):
        to_edge_filter(models.Filter(must=[geo]))


def test_make_payload_flattens_metadata_and_guards_reserved_keys():
    p = make_payload(uri="a.png", sha256=SHA, width=3, height=4, metadata={"k": 1})
    assert p == {"uri": "a.png", "sha256": SHA, "width": 3, "height": 4, "k": 1}
    with pytest.raises(ValueError, match="reserved"):
        make_payload(metadata={"uri": "x"})


def test_the_cli_and_the_library_put_a_default_store_in_one_place(tmp_path, monkeypatch):
    import argparse

    from vitr_qdrant.cli.store import store_path
    from vitr_qdrant.store_info import store_info

    monkeypatch.setenv("VITR_QDRANT_HOME", str(tmp_path / "home"))
    for backend, where in ((None, tmp_path / "home"), ("edge", tmp_path / "home"),
                           ("qdrant-local", tmp_path / "home" / "qdrant-local")):
        assert default_store_path(backend) == where
        assert store_path(argparse.Namespace(url=None, path=None, backend=backend)) == where
        assert store_info(backend=backend)["location"] == str(where)
    assert default_store_path("qdrant-local", "~/x") == default_store_path(data_dir="~/x") / "qdrant-local"


def test_factory_chooses_by_arguments(tmp_path, monkeypatch):
    from vitr_qdrant.connectors.client import QdrantClientBackend
    from vitr_qdrant.connectors.edge import EdgeBackend

    monkeypatch.setenv("VITR_QDRANT_HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home"
    edge = create_backend()
    assert isinstance(edge, EdgeBackend) and edge.path == tmp_path / "home"
    assert isinstance(create_backend(path=tmp_path / "x"), EdgeBackend)
    mem = create_backend(location=":memory:")
    assert isinstance(mem, QdrantClientBackend) and mem.name == "qdrant-local"
    loc = create_backend(path=tmp_path / "y", backend="qdrant-local")
    assert loc.name == "qdrant-local"
    loc.close()
    for bad in (dict(url="http://h:6333", path="p"), dict(location="elsewhere"), dict(api_key="k"),
                dict(backend="milvus"), dict(location=":memory:", path="p")):
        with pytest.raises(ValueError):
            create_backend(**bad)


def test_retry_only_transient_errors_and_bounded(monkeypatch):
    waits = []
    monkeypatch.setattr("time.sleep", waits.append)
    assert is_transient(ResourceExhaustedResponse("slow down", 1))
    assert is_transient(UnexpectedResponse(503, "unavailable", b"", {}))
    assert is_transient(UnexpectedResponse(425, "too early", b"", {}))   # the one policy: URLs retry 425 too
    assert not is_transient(UnexpectedResponse(400, "bad request", b"", {}))
    assert not is_transient(ValueError("x"))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    policy = RetryPolicy(attempts=4, backoff=0.5)
    assert call_with_retry(flaky, policy, is_transient, "test") == "ok" and len(calls) == 3
    assert 0.5 <= waits[0] <= 0.625 and 1.0 <= waits[1] <= 1.25          # doubling, a quarter of jitter
    calls.clear()
    with pytest.raises(ConnectionError):
        call_with_retry(lambda: calls.append(1) or (_ for _ in ()).throw(ConnectionError("down")),
                        RetryPolicy(attempts=3), is_transient, "test")
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(UnexpectedResponse):
        call_with_retry(lambda: calls.append(1) or (_ for _ in ()).throw(
            UnexpectedResponse(400, "bad", b"", {})), RetryPolicy(attempts=3), is_transient, "test")
    assert len(calls) == 1
    waits.clear()
    busy = iter([ResourceExhaustedResponse("slow down", 60), None])
    call_with_retry(lambda: (e := next(busy)) and (_ for _ in ()).throw(e), policy, is_transient, "test")
    assert waits == [MAX_WAIT_S]                                          # retry-after honoured, capped


def test_remote_backend_retries_then_raises_on_unreachable_server(monkeypatch):
    from qdrant_client.http.exceptions import ResponseHandlingException

    from vitr_qdrant.connectors import CollectionSpec

    monkeypatch.setattr("time.sleep", lambda s: None)
    b = create_backend(url="http://127.0.0.1:9", retries=2, timeout=2, shard_number=2, replication_factor=2,
                       check_compatibility=False)
    assert b.name == "qdrant-remote" and b.cluster == {"shard_number": 2, "replication_factor": 2}
    calls = []
    real = b.client.collection_exists
    monkeypatch.setattr(b.client, "collection_exists", lambda name: calls.append(name) or real(name))
    with pytest.raises(StoreError, match="cannot reach the Qdrant server") as err:
        b.open_collection(CollectionSpec("c", 4, 2))
    assert isinstance(err.value.__cause__, ResponseHandlingException)   # translated after the retries
    assert len(calls) == 2
    b.close()


def test_collection_spec_rejects_bad_storage_options():
    from vitr_qdrant.connectors import CollectionSpec
    with pytest.raises(ValueError, match="regions_datatype"):
        CollectionSpec("c", 4, 2, regions_datatype="int4")
    with pytest.raises(ValueError, match="quantized already"):
        CollectionSpec("c", 4, 2, regions_datatype="turbo8", quantize_regions=True)
    with pytest.raises(ValueError, match="must match"):
        CollectionSpec("bad name", 4, 2)


def test_stored_storage_options_win_and_missing_ones_take_their_defaults():
    from vitr_qdrant.connectors import STORAGE_OPTIONS, CollectionSpec

    given = CollectionSpec("c", 4, 2, hnsw_m=32, regions_datatype="float16")
    assert given.metadata()["options"]["hnsw_m"] == 32 and set(STORAGE_OPTIONS) <= set(given.metadata()["options"])
    old = given.with_stored_options({"options": {"regions_datatype": "float32", "quantize_regions": True}})
    assert (old.regions_datatype, old.quantize_regions) == ("float32", True)
    assert (old.hnsw_m, old.hnsw_ef_construct, old.regions_in_payload) == (16, 100, True)   # stored before they were


def test_edge_options_reach_the_engine(tmp_path):
    """Every option the embedded backend takes shows in the engine's own config."""
    import json

    from vitr_qdrant.connectors import CollectionSpec

    with create_backend(path=tmp_path, max_search_threads=1, wal=False) as b:
        b.open_collection(CollectionSpec("q", 4, 2, quantize_regions=True))
        b.open_collection(CollectionSpec("c", 4, 2, hnsw_m=8, hnsw_ef_construct=50))
    quantized = json.loads((tmp_path / "q" / "shard" / "edge_config.json").read_text())["vectors"]["regions"]
    assert quantized["quantization_config"] == {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}
    config = json.loads((tmp_path / "c" / "shard" / "edge_config.json").read_text())
    assert config["vectors"]["regions"].get("quantization_config") is None
    assert config["max_search_threads"] == 1 and config["wal_enabled"] is False
    assert config["vectors"]["global"]["hnsw_config"]["m"] == 8
    assert config["vectors"]["global"]["hnsw_config"]["ef_construct"] == 50
    assert config["vectors"]["regions"]["hnsw_config"]["m"] == 0   # regions only rerank


def test_a_point_is_checked_once_for_its_collections_sizes():
    import numpy as np

    from vitr_qdrant.connectors import CollectionSpec, StoredPoint
    from vitr_qdrant.connectors.base import check_point, check_points
    from vitr_qdrant.errors import InputError

    spec = CollectionSpec("c", global_dim=4, region_dim=2)
    ok = check_point(StoredPoint(1, np.ones(4), np.ones((3, 2), np.float64)), spec)
    assert ok.vectors["regions"].dtype == np.float32 and ok.id == 1 and ok.payload == {}
    assert check_points([ok], CollectionSpec("other", global_dim=4, region_dim=2))[0] is ok   # taken as it is
    with pytest.raises(InputError, match=r"global vector must have shape \(5,\)"):   # checked for other sizes
        check_points([ok], CollectionSpec("c", global_dim=5, region_dim=2))
    with pytest.raises(InputError, match="first-stage vector"):
        check_points([ok], CollectionSpec("c", global_dim=4, region_dim=2, first_dim=3))
    with pytest.raises(InputError, match="NaN or inf"):
        check_points([StoredPoint(2, np.full(4, np.nan), np.ones((3, 2)))], spec)
