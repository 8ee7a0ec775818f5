"""examples/ cannot rot: each Python example runs with the tiny model; the shell one is checked."""
from __future__ import annotations

import py_compile
import re
import runpy
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUERY = "red circle left of blue square"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model):
    from vitr_qdrant.encoders import save_model

    return str(save_model(tiny_model, tmp_path_factory.mktemp("model")))


def example(name: str, monkeypatch) -> dict:
    monkeypatch.syspath_prepend(str(EXAMPLES))   # as `python examples/NAME.py` has it
    return runpy.run_path(str(EXAMPLES / name))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_every_example_compiles_and_says_what_it_needs(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "x.pyc"), doraise=True)
    assert "Needs:" in path.read_text().split('"""')[1]


def test_quickstart(model_dir, tmp_path, monkeypatch, capsys):
    example("quickstart.py", monkeypatch)["main"](["--n", "24", "--model", model_dir, "--store", str(tmp_path)])
    out = capsys.readouterr().out
    assert "24 added" in out and out.count("holds:") == 10 and "@(" in out   # two queries, grounded hits


def test_quickstart_without_the_bundled_model_falls_back(tmp_path, monkeypatch, capsys):
    import vitr_qdrant as vq

    def missing(name=None, device=None):
        raise vq.ModelNotFoundError("the bundled default model vitr-objects-s is not installed")

    monkeypatch.setattr(vq, "load_model", missing)
    monkeypatch.setattr(vq, "create_model", lambda name: vq.encoders.create_model("vitr-tiny-test", device="cpu"))
    example("quickstart.py", monkeypatch)["main"](["--n", "8", "--store", str(tmp_path)])
    assert "RANDOM weights" in capsys.readouterr().out


def test_own_photos(model_dir, tmp_path, scene_images, monkeypatch, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, img in enumerate(scene_images[:5]):
        img.save(folder / f"{i}.jpg")
    (folder / "broken.jpg").write_text("not a photo")
    args = [str(folder), QUERY, "--model", model_dir, "--store", str(tmp_path / "store"),
            "--like", str(folder / "1.jpg")]
    example("own_photos.py", monkeypatch)["main"](args)
    out = capsys.readouterr().out
    assert "searching in vitr mode" in out and "added 5" in out and "broken.jpg" in out
    assert out.split(f"like {folder / '1.jpg'}")[1].split()[1] == str(folder / "1.jpg")   # itself first


@pytest.mark.parametrize("name", ["langchain_retriever.py", "llamaindex_retriever.py"])
def test_rag_retrievers(name, model_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("langchain_core" if name.startswith("langchain") else "llama_index.core")
    example(name, monkeypatch)["main"]([QUERY, "--n", "12", "--model", model_dir, "--store", str(tmp_path), "-k", "3"])
    out = capsys.readouterr().out
    assert "added 12" in out and out.count(str(tmp_path / "images")) >= 3


def test_move_to_server_copies_into_a_local_store(model_dir, tmp_path, scene_images, monkeypatch, capsys):
    import vitr_qdrant as vq

    model = vq.load_model(model_dir, device="cpu")
    with vq.VitrCollection("pics", path=tmp_path / "edge", model=model) as col:
        col.add_images(scene_images[:6], metadata={"kind": "scene"}, progress=False)
        col.add_texts([QUERY, "blue square above red circle"])
        want = [h.id for h in col.search(QUERY, limit=3)]
    args = ["pics", "--path", str(tmp_path / "edge"), "--dest-path", str(tmp_path / "copy"), "--query", QUERY,
            "--model", model_dir]
    example("move_to_server.py", monkeypatch)["main"](args)
    assert "pics: 6 points copied" in capsys.readouterr().out
    with vq.VitrCollection("pics", path=tmp_path / "copy", backend="qdrant-local", model=model) as col:
        assert len(col) == 6 and col.info()["texts"] == 2 and col.get(want)[0].payload["kind"] == "scene"
        assert [h.id for h in col.search(QUERY, limit=3)] == want


def test_move_to_server_without_a_server_is_one_line(monkeypatch):
    from test_collection import free_port

    port = free_port()
    with pytest.raises(SystemExit) as stop:
        example("move_to_server.py", monkeypatch)["main"](["pics", "--url", f"http://127.0.0.1:{port}"])
    message = str(stop.value)
    assert message.startswith(f"move_to_server: cannot use the Qdrant server at http://127.0.0.1:{port}")
    assert "\n" not in message


def test_train_head_script_uses_real_options():
    from vitr_qdrant.encoders.train import TrainCfg

    script = (EXAMPLES / "train_head_flickr30k.sh").read_text()
    train = script[script.index("vitr train "):].split("\nMODEL=")[0]
    keys = set(re.findall(r"(?:^|\s)([a-z_]+)=", train))
    assert keys and keys <= {f.name for f in fields(TrainCfg)}
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(EXAMPLES / "train_head_flickr30k.sh")], check=True)
