"""One error seam: every public call given bad input raises only the VitrError family."""
from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

import vitr_qdrant as vq


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"   # nothing listens there once closed


@pytest.fixture(scope="module")
def col(tmp_path_factory, tiny_model, scene_images):
    c = vq.VitrCollection("seam", path=tmp_path_factory.mktemp("store"), model=tiny_model)
    c.add_images(scene_images[:3], ids=[1, 2, 3], progress=False)
    yield c
    c.close()


def module_calls(tmp_path, tiny_model):
    url = closed_port_url()
    return {
        "load_model name": lambda: vq.load_model("no-such-model"),
        "load_model type": lambda: vq.load_model(tmp_path / "missing-dir"),
        "create_model": lambda: vq.create_model("no-such-model"),
        "Settings key": lambda: vq.Settings(batch_sise=3),
        "Settings value": lambda: vq.Settings(workers=0),
        "Settings.create": lambda: vq.Settings.create({"url_timeout": "soon"}),
        "SearchParams": lambda: vq.SearchParams(limit=-1),
        "SearchParams.create": lambda: vq.SearchParams.create(top_k=3),
        "VitrCollection name": lambda: vq.VitrCollection("no/slash", path=tmp_path, model=tiny_model),
        "VitrCollection option": lambda: vq.VitrCollection("x", path=tmp_path, model=tiny_model, threads=3),
        "VitrCollection storage": lambda: vq.VitrCollection("x", path=tmp_path, model=tiny_model,
                                                            regions_datatype="int4"),
        "VitrCollection settings": lambda: vq.VitrCollection("x", path=tmp_path, model=tiny_model, settings={"a": 1}),
        "VitrCollection backend": lambda: vq.VitrCollection("x", path=tmp_path, model=tiny_model, backend="redis"),
        "VitrCollection both": lambda: vq.VitrCollection("x", path=tmp_path, location=":memory:", model=tiny_model),
        "VitrCollection missing": lambda: vq.VitrCollection("x", path=tmp_path, model=tiny_model, create=False),
        "VitrCollection server": lambda: vq.VitrCollection("x", url=url, model=tiny_model, retries=1, timeout=1),
        "list_collections server": lambda: vq.list_collections(url=url, retries=1, timeout=1),
        "list_collections option": lambda: vq.list_collections(path=tmp_path, colour="red"),
        "AsyncVitrCollection.open": lambda: asyncio.run(vq.AsyncVitrCollection.open("x", path=tmp_path,
                                                                                   model=tiny_model, create=False)),
    }


def collection_calls(col):
    face = vq.AsyncVitrCollection.of(col)
    return {
        "search empty": lambda: col.search("  "),
        "search type": lambda: col.search(42),
        "search limit": lambda: col.search("red circle", limit=0),
        "search filter": lambda: col.search("red circle", filter={"k": {"near": 1}}),
        "search mode": lambda: col.search("red circle", mode="fast"),
        "search_batch": lambda: col.search_batch(["red circle", ""]),
        "search_by_image": lambda: col.search_by_image(b"not an image"),
        "search_by_image path": lambda: col.search_by_image("/no/such/file.png"),
        "search_texts": lambda: col.search_texts(np.zeros((2, 2), np.float32)),
        "add_images metadata": lambda: col.add_images([np.zeros((8, 8, 3), np.uint8)], metadata=5, progress=False),
        "add_images ids": lambda: col.add_images([np.zeros((8, 8, 3), np.uint8)], ids=[1, 2], progress=False),
        "add_texts": lambda: col.add_texts(5),
        "add_texts metadata": lambda: col.add_texts(["red circle"], metadata=5),
        "delete": lambda: col.delete(3.5),
        "get": lambda: col.get(object()),
        "scroll": lambda: list(col.scroll(limit=-1)),
        "count": lambda: col.count(filter=3),
        "set_metadata value": lambda: col.set_metadata(1, "album"),
        "set_metadata reserved": lambda: col.set_metadata(1, {"sha256": "x"}),
        "create_payload_index": lambda: col.create_payload_index("k", "vector"),
        "model.score": lambda: col.model.score(["/no/such/file.png"], ["red"]),
        "model.encode_texts": lambda: col.model.encode_texts([""]),
        "model.score mode": lambda: col.model.score([np.zeros((8, 8, 3), np.uint8)], ["red"], mode="fast"),
        "async search": lambda: asyncio.run(face.search("red", limit=5000)),
        "async set_metadata": lambda: asyncio.run(face.set_metadata(1, {"uri": "x"})),
    }


def test_module_functions_raise_only_the_error_family(tmp_path, tiny_model):
    escaped = {}
    for name, call in module_calls(tmp_path, tiny_model).items():
        try:
            call()
        except vq.VitrError:
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            escaped[name] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        else:
            escaped[name] = "no error"
    assert escaped == {}


def test_collection_methods_raise_only_the_error_family(col):
    escaped = {}
    for name, call in collection_calls(col).items():
        try:
            call()
        except vq.VitrError:
            continue
        except Exception as exc:  # noqa: BLE001
            escaped[name] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        else:
            escaped[name] = "no error"
    assert escaped == {}
    assert len(col) == 3   # nothing bad was stored


def test_input_errors_stay_value_errors_and_messages_say_what_to_do(tmp_path, tiny_model):
    with pytest.raises(ValueError, match="valid settings: data_dir, batch_size"):
        vq.Settings(batch_sise=3)
    with pytest.raises(ValueError, match="valid: .*max_search_threads"):
        vq.VitrCollection("x", path=tmp_path, model=tiny_model, threads=3)
    with pytest.raises(vq.StoreError, match="cannot reach the Qdrant server"):
        vq.list_collections(url=closed_port_url(), retries=1, timeout=1)
