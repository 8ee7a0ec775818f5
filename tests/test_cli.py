"""The ``vitr`` command with the tiny model saved to a directory."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vitr_qdrant.cli import main
from vitr_qdrant.cli.index import in_shard, read_entries

SUBCOMMANDS = ("index", "search", "train", "eval", "bench", "demo", "info")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model):
    from vitr_qdrant.encoders import save_model

    return str(save_model(tiny_model, tmp_path_factory.mktemp("model")))


@pytest.fixture()
def photos(tmp_path, scene_images):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, img in enumerate(scene_images[:6]):
        img.save(folder / f"{i}.png")
    (folder / "broken.png").write_text("not an image")
    return folder


def store_args(tmp_path, model_dir):
    return ["-c", "pics", "--path", str(tmp_path / "store"), "--model", model_dir]


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "vitr_qdrant.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in SUBCOMMANDS:
        assert f"    {name}" in out.stdout


def test_index_search_info(tmp_path, model_dir, photos, capsys, tiny_model):
    args = store_args(tmp_path, model_dir)
    report = tmp_path / "report.json"
    assert main(["index", str(photos), "--no-progress", "--report", str(report), *args]) == 1   # one failed
    out, err = capsys.readouterr()
    assert "added 6, skipped 0, failed 1" in out and "broken.png" in err
    assert json.loads(report.read_text())["failed"][0]["item"].endswith("broken.png")
    (photos / "broken.png").unlink()
    assert main(["index", str(photos), "--no-progress", "--report", str(report), *args]) == 0
    out = capsys.readouterr().out
    assert "added 0, skipped 6" in out and f"skipped: {photos / '0.png'}: already stored" in out
    assert json.loads(report.read_text())["skipped"][0] == {"item": str(photos / "0.png"), "reason": "already stored"}

    assert main(["search", "red circle left of blue square", "-k", "3", "--json", *args]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and {"id", "score", "scores", "payload", "grounding"} <= set(hits[0])
    assert hits[0]["grounding"][0]["word"] == "red"
    assert main(["search", "--image", str(photos / "2.png"), "-k", "2", *args]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[-1].endswith("2.png")

    from vitr_qdrant import VitrCollection

    with VitrCollection("pics", path=tmp_path / "store", model=tiny_model) as col:   # same weights
        col.add_texts(["red circle left of blue square", "a green star"])
    assert main(["search", "--image", str(photos / "2.png"), "--texts", "--json", *args]) == 0
    assert {h["payload"]["text"] for h in json.loads(capsys.readouterr().out)} == {
        "red circle left of blue square", "a green star"}

    assert main(["info", "-c", "pics", "--path", str(tmp_path / "store")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 6 and info["texts"] == 2 and info["model"]["name"] == "vitr-tiny-test"
    assert main(["info", "--path", str(tmp_path / "store")]) == 0   # text collections are listed as such
    listing = json.loads(capsys.readouterr().out)
    assert listing["collections"] == ["pics"] and listing["text_collections"] == ["pics__texts"]
    assert main(["info", "-c", "pics__texts", "--path", str(tmp_path / "store")]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 2


def test_index_compact(tmp_path, model_dir, photos, capsys):
    args = store_args(tmp_path, model_dir)
    assert main(["index", str(photos), "--compact", "--no-progress", *args]) == 1   # broken.png
    assert "added 6" in capsys.readouterr().out
    assert main(["search", "red circle left of blue square", "-k", "2", "--json", *args]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert main(["info", "-c", "pics", "--path", str(tmp_path / "store")]) == 0
    options = json.loads(capsys.readouterr().out)["stored"]["options"]
    assert options["regions_datatype"] == "turbo8" and options["regions_in_payload"] is False


def test_csv_and_url_list_inputs(tmp_path, model_dir, photos, capsys):
    (tmp_path / "items.csv").write_text("image,id,kind,year\n" + "".join(
        f"photos/{i}.png,p{i},{'ab'[i % 2]},{2020 + i}\n" for i in range(4)))
    (tmp_path / "urls.txt").write_text("# one per line\nphotos/5.png\n\nftp://example.com/x.png\n")
    args = store_args(tmp_path, model_dir)
    assert main(["index", str(tmp_path / "items.csv"), str(tmp_path / "urls.txt"), "--id-column", "id",
                 "--no-progress", *args]) == 1   # the ftp URL failed
    out, err = capsys.readouterr()
    assert "added 5" in out and "scheme" in err
    assert main(["search", "a red star", "--filter", '{"kind": "a", "year": {"gte": 2021}}', "--json", *args]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["id"] for h in hits] == ["p2"] and hits[0]["payload"]["year"] == 2022


def test_shards_partition_the_inputs(tmp_path, model_dir, photos, capsys):
    keys = [e.key for e in read_entries([str(photos)])]
    parts = [[k for k in keys if in_shard(k, (i, 3))] for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(keys)
    args = store_args(tmp_path, model_dir)
    added = []
    for i in range(3):
        main(["index", str(photos), "--shard", f"{i}/3", "--no-progress", *args])
        out = capsys.readouterr().out   # which paths fall in a shard depends on tmp_path's name
        empty = "holds none of the inputs" in out
        assert empty == (not parts[i]), out
        added.append(0 if empty else int(out.split("added ")[1].split(",")[0]))
    assert added == [len(p) - any(k.endswith("broken.png") for k in p) for p in parts]
    main(["info", "-c", "pics", "--path", str(tmp_path / "store")])
    assert json.loads(capsys.readouterr().out)["images"] == 6
    with pytest.raises(SystemExit):
        main(["index", str(photos), "--shard", "3/3", *args])


def test_demo_small(tmp_path, model_dir, capsys):
    assert main(["demo", "--n", "40", "--queries", "1", "--top", "2", "--size", "64", "--workers", "1",
                 "--model", model_dir, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mean precision@2" in out and "global (CLIP baseline)" in out
    assert (tmp_path / "contact_sheet.png").stat().st_size > 0
    page = (tmp_path / "index.html").read_text()
    assert "<h2>Legend</h2>" in page and "neither right nor wrong" in page and "<h2>Summary</h2>" in page
    assert "src='images/000" in page and str(tmp_path) not in page   # thumbnails by relative links
    # rerun with other weights into the same folder: the demo's store is rebuilt, not refused
    import vitr_qdrant.encoders as E

    other_model = E.create_model("vitr-tiny-test", device="cpu")
    other_model.head_trained = True
    other = str(other_model.save(tmp_path / "other-model"))
    assert main(["demo", "--n", "40", "--queries", "1", "--top", "2", "--size", "64", "--workers", "1",
                 "--model", other, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "built with another model: rebuilding" in out and "40 added" in out


def test_demo_without_model_explains(monkeypatch, capsys):
    import vitr_qdrant.encoders as E
    from vitr_qdrant import ModelNotFoundError

    def missing(*a, **k):
        raise ModelNotFoundError("the bundled default model vitr-objects-s is not installed")

    monkeypatch.setattr(E, "load_model", missing)
    assert main(["demo", "--n", "1"]) == 2
    assert "--model" in capsys.readouterr().err
    monkeypatch.setattr(E, "load_model", lambda *a, **k: E.create_model("vitr-tiny-test", device="cpu"))
    assert main(["demo", "--n", "1"]) == 2                      # a head-less model: nothing to compare
    assert "no trained VITR head" in capsys.readouterr().err


def test_tools_delegate(tmp_path, model_dir, photos, monkeypatch, capsys):
    import vitr_qdrant.encoders.train as train

    seen = []
    monkeypatch.setattr(train, "main", lambda argv: seen.append(argv))
    assert main(["train", "stage=head", "epochs=1"]) == 0 and seen == [["stage=head", "epochs=1"]]
    assert main(["eval", "--scorer", "oracle", "--split", "test-iid", "--n-images", "8", "--n-pairs", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["test-iid"]["swap_acc"] == 100.0
    (photos / "captions.csv").write_text("image,caption\n0.png,red circle\n1.png,blue square\n")
    assert main(["eval", "--data", str(photos / "captions.csv"), "--model", model_dir, "--mode", "late"]) == 0
    assert "t2i_r1" in json.loads(capsys.readouterr().out)["metrics"]
    with pytest.raises(SystemExit):
        main(["bench", "no-such-benchmark"])


def test_index_options_default_to_the_settings(tmp_path, model_dir, photos, monkeypatch):
    import vitr_qdrant.collection as C
    from vitr_qdrant import Settings

    seen, real = [], C.VitrCollection.add_images
    monkeypatch.setattr(C.VitrCollection, "add_images", lambda self, *a, **k: seen.append(self.settings) or real(self, *a, **k))
    args = [str(photos), "--no-progress", *store_args(tmp_path, model_dir)]
    assert main(["index", *args]) == 1 and seen == [Settings()]   # broken.png fails
    assert main(["index", *args, "--batch-size", "2", "--url-retries", "5", "--jpeg-decoder", "pil"]) == 1
    assert seen[1] == Settings(batch_size=2, url_retries=5, jpeg_decoder="pil")
