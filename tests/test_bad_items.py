"""One bad item never sinks a batch: whatever belongs to one item (its bytes, metadata, id, path) is a
per-item failure naming it, and every good item of the batch is stored; the CLI names the row."""
from __future__ import annotations

import datetime
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

import vitr_qdrant as vq
from vitr_qdrant.cli import main


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def bad_cases(tmp_path, image):
    """(item, id, metadata, what the reason says) for every kind of bad item; ``image`` is a good image."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    return [
        (image, 101, {"score": float("nan")}, "metadata 'score': nan is not a payload number"),
        (image, 102, {"taken": datetime.datetime(2024, 5, 1)}, "a datetime is not a payload value; store its "
                                                               ".isoformat()"),
        (image, 103, {"tags": {"a", "b"}}, "metadata 'tags': a set is not a payload value; pass a list"),
        (image, 104, {"owner": object()}, "metadata 'owner': a object is not a payload value"),
        (image, 105, ["not", "a dict"], "metadata must be a dict (or None), got list"),
        (image, 106, {"deep": {"x": [1, float("inf")]}}, "metadata 'deep.x[1]': inf"),
        (image, 107, {"big": 2**70}, "does not fit a 64-bit payload integer"),
        (image, 108, {"uri": "elsewhere"}, "metadata key 'uri' is reserved"),
        (image, 109, {3: "x"}, "metadata keys must be strings"),
        (image, -1, None, "an int id must be in 0..2**64-1"),
        (image, True, None, "an id must be an int or a str, got bool"),
        (image, 1.5, None, "an id must be an int or a str, got float"),
        (image, 1, None, "id 1 was given to an earlier item of this call"),
        (str(tmp_path / ("x" * 300 + ".png")), 110, None, "File name too long"),
        (str(fifo), 111, None, "not a regular file (a FIFO)"),
        ("", 112, None, "an empty path"),
        (Image.new("RGB", (0, 0)), 113, None, "the image has no pixels (0x0)"),
        (np.zeros((0, 4, 3), np.uint8), 114, None, "the image has no pixels (4x0)"),
        (b"not an image", 115, None, "not a readable image"),
        ({"path": "a.png"}, 116, None, "unsupported image type dict"),
        (3.5, 117, None, "unsupported image type float"),
    ]


def test_a_mixed_batch_stores_every_good_item(tmp_path, tiny_model, scene_images):
    bad = bad_cases(tmp_path, scene_images[7])
    good = [(scene_images[i], i, {"i": np.int64(i), "pair": (i, "x"), "nested": {"ok": None}}) for i in range(1, 7)]
    rows, expect = [], []
    for k, case in enumerate(bad):   # a good item, then a bad one, ...
        if k < len(good):
            rows.append(good[k])
            expect.append(None)
        rows.append(case[:3])
        expect.append(case[3])
    items, ids, metas = zip(*rows)
    with vq.VitrCollection("mixed", path=tmp_path / "store", model=tiny_model) as col:
        report = col.add_images(list(items), ids=list(ids), metadata=list(metas), batch_size=4, progress=False)
        assert report.added == 6 and len(col) == 6 and report.ids == list(range(1, 7))
        assert sorted(report.failed_inputs) == [n for n, e in enumerate(expect) if e]
        for (item, reason), n in zip(report.failed, report.failed_inputs):
            assert expect[n] in reason, (item, reason)
        stored = {r.id: r.payload for r in col.get(list(range(1, 7)))}
        assert stored[3]["i"] == 3 and stored[3]["pair"] == [3, "x"] and stored[3]["nested"] == {"ok": None}
        again = col.add_images(list(items), ids=list(ids), metadata=list(metas), progress=False)
        assert (again.added, again.skipped, len(again.failed)) == (0, 6, len(bad))   # the same, every time


def test_vectors_the_store_would_refuse_fail_only_their_item(tmp_path, tiny_model, scene_images, monkeypatch):
    real = tiny_model.encode_pixels   # what the ingest pipeline's encoding thread calls

    def nan_for_the_second(pixels):
        emb = real(pixels)
        if len(pixels) > 1:
            emb.global_vectors[1] = np.nan
        return emb

    with vq.VitrCollection("nan", path=tmp_path, model=tiny_model) as col:
        monkeypatch.setattr(tiny_model, "encode_pixels", nan_for_the_second)
        report = col.add_images(scene_images[:4], progress=False)
    assert report.added == 3 and len(report.failed) == 1 and "NaN or inf" in report.failed[0][1]
    assert report.failed_inputs == [1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model):
    from vitr_qdrant.encoders import save_model

    return str(save_model(tiny_model, tmp_path_factory.mktemp("model")))


def test_the_cli_names_the_row_and_stores_the_rest(tmp_path, model_dir, scene_images, capsys):
    for i in range(3):
        scene_images[i].save(tmp_path / f"{i}.png")
    (tmp_path / "photos.csv").write_text("image,id,score\n0.png,a,1.5\nmissing.png,b,2\n1.png,c,nan\n"
                                         "2.png,a,3\n")
    (tmp_path / "urls.txt").write_text("# a list\n\n0.png\nnot-there.png\n")
    args = ["-c", "rows", "--path", str(tmp_path / "store"), "--model", model_dir, "--no-progress"]
    assert main(["index", str(tmp_path / "photos.csv"), *args, "--id-column", "id",
                 "--report", str(tmp_path / "r.json")]) == 1
    out, err = capsys.readouterr()
    assert "added 2, skipped 0, failed 2" in out
    assert f"failed: {tmp_path / 'photos.csv'} line 3: {tmp_path / 'missing.png'}: no such file" in err
    assert f"failed: {tmp_path / 'photos.csv'} line 5: {tmp_path / '2.png'}: id 'a' was given" in err
    failed = json.loads((tmp_path / "r.json").read_text())["failed"]
    assert [f["item"].split(": ")[0] for f in failed] == [f"{tmp_path / 'photos.csv'} line {n}" for n in (3, 5)]
    with vq.VitrCollection("rows", path=tmp_path / "store", model=vq.load_model(model_dir)) as col:
        assert col.get("c")[0].payload["score"] == "nan"                    # a nan cell is text, not NaN
        assert col.get("a")[0].payload["score"] == 1.5
    assert main(["index", str(tmp_path / "urls.txt"), *args]) == 1
    err = capsys.readouterr().err
    assert f"failed: {tmp_path / 'urls.txt'} line 4: {tmp_path / 'not-there.png'}: no such file" in err
