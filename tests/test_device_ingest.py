"""The device decoder (torchvision JPEG decode) of the ingest pipeline against the PIL decoder.

On CPU the device decoder runs with ``jpeg_decoder="torchvision"`` (libjpeg through torchvision); the GPU
test runs the automatic choice with nvJPEG and is skipped without CUDA.
"""
from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import vitr_qdrant as vq
from vitr_qdrant.encoders.images import preprocess, preprocess_tensors
from vitr_qdrant.ingest.decoders import DEVICE_DECODER, choose_decoder
from vitr_qdrant.sources.inputs import Source
from vitr_qdrant.settings import Settings


def jpeg(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


@pytest.fixture()
def inputs(tmp_path, scene_images):
    """Good JPEG files and bytes, a PNG, an EXIF-rotated and a CMYK JPEG, and four bad items."""
    good = []
    for i, img in enumerate(scene_images[:5]):
        path = tmp_path / f"s{i}.jpg"
        path.write_bytes(jpeg(img.resize((64 + 16 * i, 64))))
        good.append(path)
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "rotated.jpeg").write_bytes(jpeg(scene_images[5].resize((80, 48)), exif=exif))
    (tmp_path / "cmyk.jpg").write_bytes(jpeg(scene_images[6].convert("CMYK")))
    scene_images[7].save(tmp_path / "s7.png")
    (tmp_path / "truncated.jpg").write_bytes(jpeg(scene_images[0])[:300])
    (tmp_path / "text.jpg").write_bytes(b"not an image at all")
    items = [*good, jpeg(scene_images[1].resize((50, 70))), tmp_path / "rotated.jpeg", tmp_path / "cmyk.jpg",
             tmp_path / "s7.png", tmp_path / "truncated.jpg", tmp_path / "text.jpg", tmp_path / "missing.jpg",
             b"\xff\xd8\xff\xe0 truncated bytes"]
    return items


def vectors(col, ids):
    pts = col._store.retrieve(col._stored_ids(ids), with_vectors=True)
    return {p.id: (p.global_vector, p.regions, p.payload) for p in pts}


def test_preprocess_tensors_matches_pil():
    rng = np.random.default_rng(0)
    for w, h in ((64, 64), (100, 45), (20, 30), (33, 32)):
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        a = preprocess(Image.fromarray(arr), 32, (0.5,) * 3, (0.5,) * 3)
        b = preprocess_tensors([torch.from_numpy(arr).permute(2, 0, 1)], 32, (0.5,) * 3, (0.5,) * 3)[0]
        diff = (a - b).abs() * 0.5 * 255   # in uint8 steps; noise is the worst case for resampling
        assert b.shape == a.shape and diff.mean() < 0.5 and (diff > 1.01).float().mean() < 0.02


def test_device_path_reports_and_stores_like_the_pil_path(tmp_path, tiny_model, inputs, monkeypatch):
    from vitr_qdrant.ingest import decoders

    decoded, real = [], decoders.decode_jpegs
    monkeypatch.setattr(decoders, "decode_jpegs", lambda data, dev: decoded.extend(data) or real(data, dev))
    reports, stored = {}, {}
    for decoder in ("pil", "torchvision"):
        with vq.VitrCollection("d", path=tmp_path / decoder, model=tiny_model,
                               settings={"jpeg_decoder": decoder, "batch_size": 4}) as col:
            reports[decoder] = rep = col.add_images(inputs, progress=False)
            stored[decoder] = vectors(col, rep.ids)
    pil, dev = reports["pil"], reports["torchvision"]
    assert (dev.added, dev.skipped, dev.ids) == (pil.added, pil.skipped, pil.ids) == (pil.added, 0, pil.ids)
    assert pil.added == 9 and [k for k, _ in dev.failed] == [k for k, _ in pil.failed]
    assert dict(dev.failed) == dict(pil.failed)          # the same reasons, item by item
    assert len(decoded) == 6    # the plain JPEGs; rotated, CMYK, PNG and the bad ones went to PIL
    for pid, (g, r, payload) in stored["pil"].items():
        g2, r2, payload2 = stored["torchvision"][pid]
        assert payload2 == payload
        assert float(g @ g2) > 0.98 and np.abs(r - r2).max() < 0.2


def test_either_path_resumes_the_other(tmp_path, tiny_model, inputs):
    with vq.VitrCollection("r", path=tmp_path, model=tiny_model, settings={"jpeg_decoder": "pil"}) as col:
        first = col.add_images(inputs[:6], progress=False)
    with vq.VitrCollection("r", path=tmp_path, model=tiny_model, settings={"jpeg_decoder": "torchvision"}) as col:
        again = col.add_images(inputs, progress=False)
        assert (again.added, again.skipped) == (9 - first.added, first.added) and len(col) == 9


def test_write_errors_surface_and_nothing_hangs(tmp_path, tiny_model, inputs, monkeypatch):
    with vq.VitrCollection("w", path=tmp_path, model=tiny_model,
                           settings={"jpeg_decoder": "torchvision", "batch_size": 2}) as col:
        def fail(points):
            raise OSError("disk full")

        monkeypatch.setattr(col._store, "upsert", fail)
        with pytest.raises(OSError, match="disk full"):
            col.add_images(inputs, progress=False)


def test_cli_index_flag(tmp_path, tiny_model, inputs, capsys):
    from vitr_qdrant.cli import main
    from vitr_qdrant.encoders import save_model

    model_dir = str(save_model(tiny_model, tmp_path / "model"))
    files = [str(p) for p in inputs[:5]]
    args = ["-c", "cli", "--path", str(tmp_path / "store"), "--model", model_dir, "--no-progress"]
    assert main(["index", *files, "--jpeg-decoder", "torchvision", *args]) == 0
    assert "added 5, skipped 0" in capsys.readouterr().out
    assert main(["index", *files, "--jpeg-decoder", "pil", *args]) == 0
    assert "added 0, skipped 5" in capsys.readouterr().out


def test_automatic_choice(tiny_model):
    jpg, png = [Source("a.jpg", "a.jpg", 0)], [Source("a.png", "a.png", 0)]
    auto, cuda = Settings(), SimpleNamespace(device=torch.device("cuda"))

    def chosen(model, settings, sources):
        return choose_decoder(model, settings, sources).name

    assert chosen(tiny_model, auto, jpg) == "pil"            # CPU model: the PIL decoder stays the default
    assert chosen(cuda, auto, jpg) == "device" and chosen(cuda, auto, png) == "pil"
    assert chosen(cuda, auto, [Source(b"\xff\xd8\xff\xe0", "b", 0)]) == "device"
    assert chosen(cuda, Settings(jpeg_decoder="pil"), jpg) == "pil"
    assert chosen(tiny_model, Settings(jpeg_decoder="torchvision"), png) == "device"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (nvJPEG)")
def test_gpu_decode_matches_cpu(tmp_path, tiny_model, inputs):
    import copy

    gpu_model = copy.deepcopy(tiny_model).to("cuda")
    assert choose_decoder(gpu_model, Settings(), [Source(inputs[0], str(inputs[0]), 0)]) is DEVICE_DECODER
    with vq.VitrCollection("g", path=tmp_path / "gpu", model=gpu_model) as col:
        rep = col.add_images(inputs, progress=False)
        got = vectors(col, rep.ids)
    with vq.VitrCollection("g", path=tmp_path / "cpu", model=tiny_model, settings={"jpeg_decoder": "pil"}) as col:
        ref = col.add_images(inputs, progress=False)
        want = vectors(col, ref.ids)
    assert (rep.added, rep.ids, dict(rep.failed)) == (ref.added, ref.ids, dict(ref.failed))
    for pid, (g, r, payload) in want.items():
        assert got[pid][2] == payload and float(g @ got[pid][0]) > 0.95   # bf16 on the GPU
