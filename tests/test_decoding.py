"""Images are reduced to what the model needs while decoding (JPEG at 1/2-1/8 scale, others right
after), under a cap of decoded pixels; payloads keep the original size, and ingest and
model.encode_images see the same pixels (the reader threads make them; the encoding thread only
encodes). (The memory bound itself: test_reliability.py, slow.)"""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import vitr_qdrant as vq
from vitr_qdrant.encoders.images import decode_image, reduce_for, resize_and_crop


def photo(width: int, height: int, fmt: str, **save) -> bytes:
    y, x = np.mgrid[0:height, 0:width]
    img = Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def test_jpegs_decode_small_and_others_are_reduced_right_after():
    img, size = decode_image(photo(2000, 1000, "JPEG"), fit=32)
    assert size == (2000, 1000) and img.size == (250, 125)        # 1/8 scale: the shorter side >= 64
    img, size = decode_image(photo(2000, 1000, "PNG"), fit=32)
    assert size == (2000, 1000) and img.size == (134, 67)         # reduced by 15, box filter
    img, size = decode_image(photo(120, 100, "PNG"), fit=32)
    assert img.size == size == (120, 100)                         # nothing to gain
    full, _ = decode_image(photo(2000, 1000, "PNG"))
    assert full.size == (2000, 1000)                              # no fit: the decoded size


def test_the_original_size_is_kept_as_rotated():
    exif = Image.Exif()
    exif[0x0112] = 6   # rotated 90 degrees
    img, size = decode_image(photo(1600, 800, "JPEG", exif=exif), fit=32)
    assert size == (800, 1600) and img.size == (100, 200)


def test_reduce_then_resize_is_the_one_resize():
    big = Image.open(io.BytesIO(photo(900, 700, "PNG"))).convert("RGB")
    assert reduce_for(big, 32).size == (90, 70)                   # by 10: the shorter side >= 64
    assert np.array_equal(np.asarray(resize_and_crop(big, 32)), np.asarray(resize_and_crop(reduce_for(big, 32), 32)))
    palette = big.convert("P")
    assert reduce_for(palette, 32).mode == "RGB"


def test_the_pixel_cap_is_a_per_item_failure_naming_the_setting(tmp_path, tiny_model):
    (tmp_path / "big.png").write_bytes(photo(800, 800, "PNG"))
    (tmp_path / "big.jpg").write_bytes(photo(800, 800, "JPEG"))
    with vq.VitrCollection("cap", path=tmp_path / "store", model=tiny_model, settings={"max_pixels": 20_000}) as col:
        report = col.add_images([tmp_path / "big.png", tmp_path / "big.jpg"], progress=False)
        assert report.added == 1 and [item for item, _ in report.failed] == [str(tmp_path / "big.png")]
        assert "640,000 pixels decoded, over the cap of 20,000; Settings.max_pixels sets it" in report.failed[0][1]
        (record,) = col.get(report.ids)
        assert (record.payload["width"], record.payload["height"]) == (800, 800)   # decoded at 100x100
        with pytest.raises(vq.ImageLoadError, match="query image.*max_pixels"):
            col.search_by_image(tmp_path / "big.png")


def test_ingest_and_encode_images_see_the_same_pixels(tmp_path, tiny_model):
    files = []
    for fmt in ("PNG", "JPEG"):
        files.append(tmp_path / f"big.{fmt.lower()}")
        files[-1].write_bytes(photo(1200, 900, fmt))
    with vq.VitrCollection("same", path=tmp_path / "store", model=tiny_model) as col:
        ids = col.add_images(files, progress=False).ids
        stored = col._store.retrieve(col._stored_ids(ids), with_vectors=True)
    direct = tiny_model.encode_images(files)
    for point, g, r in zip(stored, direct.global_vectors, direct.region_vectors):
        np.testing.assert_allclose(point.global_vector, g, atol=1e-5)
        np.testing.assert_allclose(point.regions, r, atol=1e-5)


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (the cap is checked before decoding)."""
    import struct
    import zlib

    data = bytearray(photo(4, 4, "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:33] = ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_one_default_pixel_cap_for_the_library_and_the_encoders(tiny_model):
    from vitr_qdrant.encoders.limits import MAX_PIXELS
    from vitr_qdrant.sources.inputs import LoadCfg

    assert vq.Settings().max_pixels == LoadCfg().max_pixels == MAX_PIXELS == 50_000_000
    over = _png_header_claiming(7072, 7072)    # 50,013,184 pixels
    for decode in (decode_image, lambda item: tiny_model.encode_images([item])):
        with pytest.raises(vq.ImageLoadError, match="over the cap of 50,000,000"):
            decode(over)
    with pytest.raises(vq.ImageLoadError, match="not a readable image"):   # 49,984,900 pixels:
        decode_image(_png_header_claiming(7070, 7070))   # past the cap, to decoding (no pixel data)


def test_the_readers_make_the_model_inputs_that_pixels_makes(tmp_path, tiny_model):
    """The reader threads decode, reduce and normalise: their tensors are VitrModel.pixels' numbers."""
    import torch

    from vitr_qdrant.ingest.decoders import PIL_DECODER, model_input
    from vitr_qdrant.sources.inputs import iter_sources

    exif = Image.Exif()
    exif[0x0112] = 6   # rotated 90 degrees
    files = {"big.png": photo(1200, 900, "PNG"), "big.jpg": photo(1200, 900, "JPEG"),
             "rotated.jpg": photo(900, 600, "JPEG", exif=exif), "small.png": photo(40, 30, "PNG")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    rgb = np.asarray(Image.open(io.BytesIO(files["big.png"])).convert("RGB"))
    rgba = Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]), "RGBA")
    inputs = [*(tmp_path / name for name in files), files["big.jpg"], Image.open(io.BytesIO(files["big.png"])),
              rgba, Image.fromarray(rgb).convert("L"), rgb[:300, :500].copy()]
    cfg, sources = vq.Settings().load_cfg(tiny_model.backbone.image_size), list(iter_sources(inputs))
    loaded = PIL_DECODER.read(sources, replace(cfg, model_input=model_input(tiny_model)), 2)
    decoded = PIL_DECODER.read(sources, cfg, 2)           # what the readers handed on before: images
    for item, it, before in zip(inputs, loaded, decoded, strict=True):
        assert it.ok and it.image is None and it.size == before.size, it.error   # only the model input is kept
        assert torch.equal(it.pixels, tiny_model.pixels([before.image])[0]), it.source.key   # ingest's numbers
        if item is not rgba:   # an RGBA image is reduced after its conversion to RGB here, before it there
            assert torch.equal(it.pixels, tiny_model.pixels([item])[0]), it.source.key
    assert loaded[2].size == (600, 900)                   # the original's size, as rotated


def test_the_encoding_thread_only_encodes(tmp_path, tiny_model, scene_files, scene_images, monkeypatch):
    """Decoding and preprocessing run on the reader threads; the caller's thread runs encode_pixels
    once a batch and nothing of the image pipeline."""
    import threading

    from vitr_qdrant.sources import inputs
    from vitr_qdrant.encoders import images, model

    caller, threads = threading.get_ident(), {"decode": [], "preprocess": [], "encode": []}

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            threads[name].append(threading.get_ident())
            return fn(*args, **kwargs)
        return wrapped

    for module, name in ((inputs, "decode_image"), (inputs, "load_image")):
        monkeypatch.setattr(module, name, spy("decode", getattr(module, name)))
    for module in (images, model):
        monkeypatch.setattr(module, "preprocess", spy("preprocess", module.preprocess))
    monkeypatch.setattr(tiny_model, "encode_pixels", spy("encode", tiny_model.encode_pixels))
    monkeypatch.setattr(tiny_model, "encode_images", lambda *a, **k: pytest.fail("encode_images while ingesting"))
    with vq.VitrCollection("threads", path=tmp_path, model=tiny_model, settings={"batch_size": 4}) as col:
        report = col.add_images([*scene_files, *scene_images[6:]], progress=False)
    assert report.added == 8 and not report.failed
    assert len(threads["decode"]) == len(threads["preprocess"]) == 8
    assert caller not in threads["decode"] + threads["preprocess"]
    assert threads["encode"] == [caller, caller]          # two batches of 4


def test_each_vector_is_checked_once_on_its_way_to_the_store(tmp_path, tiny_model, scene_images, monkeypatch):
    from vitr_qdrant.ingest import pipeline as ingest
    from vitr_qdrant.connectors import base

    checked, real = [], base.check_point

    def counting(point, spec):
        checked.append(point.id)
        return real(point, spec)

    monkeypatch.setattr(base, "check_point", counting)    # the store's check (upsert)
    monkeypatch.setattr(ingest, "check_point", counting)  # the pipeline's, item by item
    with vq.VitrCollection("once", path=tmp_path, model=tiny_model) as col:
        report = col.add_images(scene_images[:6], progress=False)
        assert report.added == 6 and sorted(checked) == sorted(col._stored_ids(report.ids))
