"""The CLI never surprises: every case of issue 15's list, each with the behaviour it promises."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import pytest

from vitr_qdrant.cli.command import build_parser, main

from test_collection import free_port


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model):
    return str(tiny_model.save(tmp_path_factory.mktemp("model")))


@pytest.fixture()
def store(tmp_path, model_dir, scene_images):
    """A store with one collection ``pics`` of two scenes."""
    for i in range(2):
        scene_images[i].save(tmp_path / f"{i}.png")
    assert main(["index", str(tmp_path / "0.png"), str(tmp_path / "1.png"), "-c", "pics", "--path",
                 str(tmp_path / "store"), "--model", model_dir, "--no-progress"]) == 0
    return tmp_path / "store"


def tree(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("command", [["search", "red circle"], ["info"], ["serve"]])
def test_a_missing_collection_is_usage_error_listing_what_is_there(command, store, model_dir, capsys):
    before = tree(store)
    model = ["--model", model_dir] if command[0] != "info" else []
    assert main([*command, "-c", "nonexistent", "--path", str(store), *model]) == 2
    err = capsys.readouterr().err
    assert "no collection 'nonexistent'" in err and "collections there: pics" in err
    assert tree(store) == before   # nothing created


@pytest.mark.parametrize("command", [["search", "red circle", "-c", "x"], ["info", "-c", "x"], ["info"],
                                     ["serve", "-c", "x"]])
def test_a_missing_store_is_usage_error_and_not_created(command, tmp_path, capsys):
    missing = tmp_path / "does" / "not" / "exist"
    assert main([*command, "--path", str(missing)]) == 2
    assert f"no store at {missing}" in capsys.readouterr().err
    assert not (tmp_path / "does").exists()


def test_index_checks_its_inputs_before_creating_anything(tmp_path, model_dir, capsys):
    args = ["-c", "x", "--path", str(tmp_path / "store"), "--model", model_dir, "--no-progress"]
    assert main(["index", str(tmp_path / "does-not-exist"), *args]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["index", str(tmp_path / "empty"), *args]) == 2
    assert "no image files in" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("path,kind\na.png,x\n")
    assert main(["index", str(tmp_path / "t.csv"), *args]) == 2
    assert "no column 'image'" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_exit_status_is_1_whenever_an_item_failed(tmp_path, model_dir, scene_images, capsys):
    folder = tmp_path / "mostly-bad"
    folder.mkdir()
    scene_images[0].save(folder / "good.png")
    for i in range(4):
        (folder / f"bad{i}.png").write_text("not an image")
    args = ["-c", "x", "--path", str(tmp_path / "store"), "--model", model_dir, "--no-progress"]
    assert main(["index", str(folder), *args]) == 1                  # 4 of 5 failed
    assert capsys.readouterr().err.count("failed: ") == 4
    assert main(["index", str(folder / "bad0.png"), *args]) == 1     # one bad file
    assert main(["index", str(folder / "good.png"), *args]) == 0     # skipped counts as done


def test_duplicates_and_skips_are_named(tmp_path, model_dir, scene_images, capsys):
    for name in ("a.png", "b.png"):
        scene_images[0].save(tmp_path / name)
    args = ["-c", "x", "--path", str(tmp_path / "store"), "--model", model_dir, "--no-progress"]
    assert main(["index", str(tmp_path / "a.png"), str(tmp_path / "b.png"), *args]) == 0
    out = capsys.readouterr().out
    assert "added 1, skipped 1" in out and f"skipped: {tmp_path / 'b.png'}: duplicate of {tmp_path / 'a.png'}" in out


def test_many_skips_are_counted_past_the_first_ones(tmp_path, model_dir, scene_images, capsys, monkeypatch):
    import vitr_qdrant.cli.index as cli_index

    monkeypatch.setattr(cli_index, "SHOWN", 2)
    for i in range(5):
        scene_images[i].save(tmp_path / f"{i}.png")
    args = [str(tmp_path), "-c", "x", "--path", str(tmp_path / "store"), "--model", model_dir, "--no-progress"]
    main(["index", *args])
    capsys.readouterr()
    assert main(["index", *args, "--report", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert out.count(": already stored") == 2 + 1 and "3 more: already stored (listed in" in out
    assert len(json.loads((tmp_path / "r.json").read_text())["skipped"]) == 5


@pytest.mark.parametrize("command", [["search", "red circle"], ["index", "http://127.0.0.1:1/x.png"]])
def test_an_unreachable_server_is_one_line(command, capsys):
    t0 = time.perf_counter()
    assert main([*command, "-c", "x", "--url", f"http://127.0.0.1:{free_port()}"]) == 1
    err = capsys.readouterr().err
    assert time.perf_counter() - t0 < 10
    assert err.count("\n") == 1 and "cannot reach the Qdrant server" in err and "Traceback" not in err
    assert main(["--debug", "info", "--url", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_an_offline_model_download_fails_fast_in_one_line(store, monkeypatch, capsys):
    import open_clip

    import vitr_qdrant.encoders.hub as hub
    from vitr_qdrant.encoders import backbone

    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(backbone, "weights_cached", lambda model, tag: False)
    monkeypatch.setattr(open_clip, "create_model", lambda *a, **k: pytest.fail("no download may start offline"))
    assert main(["search", "red circle", "-c", "pics", "--path", str(store), "--model", "vitr-ViT-B-32"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the hub cannot be reached (offline?)" in err and "{e}" not in err


def test_offline_mode_is_restored(monkeypatch):
    from huggingface_hub import constants

    import vitr_qdrant.encoders.hub as hub

    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    with hub.offline_unless_reachable() as online:
        assert not online and constants.HF_HUB_OFFLINE
    assert not constants.HF_HUB_OFFLINE


def test_serve_beyond_this_machine_needs_a_key(store, model_dir, capsys, monkeypatch):
    monkeypatch.delenv("VITR_SERVICE_KEY", raising=False)
    assert main(["serve", "-c", "pics", "--path", str(store), "--host", "0.0.0.0", "--model", model_dir]) == 2
    assert "--service-key" in capsys.readouterr().err


def test_serve_wires_the_options_into_the_app(store, model_dir, monkeypatch, tmp_path):
    import uvicorn
    from fastapi.testclient import TestClient

    served = {}

    def fake_run(app, **kwargs):   # instead of listening: call the app the way a client would
        client = TestClient(app, base_url="http://127.0.0.1")
        served["health"] = client.get("/health").status_code
        served["no key"] = client.get("/info").status_code
        served["info"] = client.get("/info", headers={"X-API-Key": "k"}).json()
        served["kwargs"] = kwargs

    monkeypatch.setattr(uvicorn, "run", fake_run)
    assert main(["serve", "-c", "pics", "--path", str(store), "--model", model_dir, "--host", "0.0.0.0",
                 "--port", "8123", "--service-key", "k", "--uploads", str(tmp_path / "up")]) == 0
    assert served["health"] == 200 and served["no key"] == 401
    assert served["info"]["images"] == 2 and served["info"]["add"] and not served["info"]["delete"]
    assert served["kwargs"]["host"] == "0.0.0.0" and served["kwargs"]["port"] == 8123


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_help():
    from vitr_qdrant.demo import run as demo
    from vitr_qdrant.cli.tools import eval_parser

    parsers = {"vitr": build_parser(), "demo": demo.build_parser(), "eval --data": eval_parser(),
               **subparsers(build_parser())}
    for name, parser in parsers.items():
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"vitr {name} {action.option_strings} has no help"


def test_demo_help_is_plain_text():
    out = subprocess.run([sys.executable, "-m", "vitr_qdrant.cli", "demo", "--help"], capture_output=True,
                         text=True).stdout
    assert "usage: vitr demo" in out and "``" not in out


def test_print_model_is_one_line(tiny_model):
    text = repr(tiny_model)
    assert "\n" not in text and text.startswith("VitrModel('vitr-tiny-test'") and "regions=16x16" in text
