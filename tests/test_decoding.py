"""Images are reduced to what the model needs while decoding (JPEG at 1/2-1/8 scale, others right
after), under a cap of decoded pixels; payloads keep the original size, and ingest and
model.encode_images see the same pixels. (The memory bound itself: test_reliability.py, slow.)"""
from __future__ import annotations

import io

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
