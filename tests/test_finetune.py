"""Fine-tuning a user can trust: what init= starts from, new words learned (or refused) before
the first step, the trained model's own name, record and card, a head that references its frozen
backbone, the help, the log, Ctrl-C and the closing line."""
from __future__ import annotations

import json
import shutil
import signal

import pytest
import torch
from safetensors.torch import load_file

import vitr_qdrant as vq
from vitr_qdrant.encoders import create_model, load_model
from vitr_qdrant.encoders.tasks import EMBEDDING
from vitr_qdrant.encoders.tokenizer import UNK, create_tokenizer, grow_vocabulary
from vitr_qdrant.encoders.train import FINETUNE_LR, FRESH_LR, TrainCfg, train

COMMON = dict(data="object-scenes", pool_size=12, render_size=96, batch_size=4, epochs=1,
              eval_every=0, workers=1, device="cpu", threads=1, warmup_steps=1,
              in_batch_negatives=2, log_every=20)


def _csv(tmp_path, captions: list[str]) -> str:
    from vitr_qdrant.encoders.data.worlds import get_world

    world = get_world("object-scenes")
    rows = ["image,caption"]
    for i, caption in enumerate(captions):
        world.render(world.sample_scene(i), 96).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{caption}")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    return str(tmp_path / "data.csv")


@pytest.fixture(scope="module")
def head_model(tmp_path_factory):
    """A clip stage and a head stage of vitr-tiny-objects (the head trained)."""
    root = tmp_path_factory.mktemp("runs")
    train(TrainCfg(model="vitr-tiny-objects", out=str(root / "clip"), max_steps=1, **COMMON))
    train(TrainCfg(stage="head", init=str(root / "clip" / "last"), out=str(root / "tiny-head"),
                   max_steps=2, **COMMON))
    return root / "tiny-head" / "last"


def test_new_words_start_as_the_unknown_token_and_grow_the_embedding():
    model = create_model("vitr-tiny-objects", device="cpu")
    before = model.encode_texts(["a zebra left of a cat", "a dog left of a cat"])
    emb = model.backbone.clip.token_embedding.weight
    n_known = len(model.backbone.tokenizer.vocab)
    ids = grow_vocabulary(model.backbone, ["zebra", "yak"])
    assert ids == [n_known + 2, n_known + 3] and model.unknown_words("a zebra near a yak") == ["near"]
    assert torch.equal(emb[ids[0]], emb[UNK])
    after = model.encode_texts(["a zebra left of a cat", "a dog left of a cat"])
    for b, a in zip(before.token_vectors + [before.global_vectors],
                    after.token_vectors + [after.global_vectors]):
        torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b))   # read as before
    # beyond the spare rows: the embedding grows, end-of-text moves to the last row
    eot = emb[-1].clone()
    many = [f"w{chr(97 + i)}{chr(97 + j)}" for i in range(5) for j in range(6)]
    grow_vocabulary(model.backbone, many)
    grown = model.backbone.clip.token_embedding.weight
    assert grown.shape[0] == model.cfg.backbone.text_cfg["vocab_size"] > emb.shape[0]
    assert torch.equal(grown[-1], eot) and model.backbone.tokenizer.eot == grown.shape[0] - 1
    torch.testing.assert_close(torch.as_tensor(model.encode_texts(["a dog left of a cat"]).global_vectors),
                               torch.as_tensor(before.global_vectors[1:]))


def test_bpe_has_no_vocabulary_to_grow():
    with pytest.raises(ValueError, match="word tokenizer"):
        create_tokenizer(None, "ViT-B-32", 49408, 77, ["zebra"])


def test_refused_words_stop_before_the_first_step(tmp_path):
    data = _csv(tmp_path, ["a zebra left of a cat", "a gnu above a dog"] * 2)
    out = tmp_path / "run"
    with pytest.raises(vq.InputError, match=r"2 words vitr-tiny-objects does not know \(zebra, gnu\)"
                       r".*new_words=learn"):
        train(TrainCfg(**{**COMMON, "data": data}, model="vitr-tiny-objects", out=str(out),
                       name="vitr-tiny-objects", new_words="refuse"))
    assert not (out / "log.jsonl").exists()
    from vitr_qdrant.cli import main

    assert main(["train", "model=vitr-tiny-objects", f"data={data}", f"out={out}", "device=cpu",
                 "new_words=refuse", "workers=1"]) == 2
    assert not (out / "log.jsonl").exists()


def test_unknown_init_says_where_the_bundled_models_are():
    with pytest.raises(vq.ModelNotFoundError, match=r"registered: .*vitr-objects-s.*bundled weights: "
                       r".*vitr-objects-s.*in .*weights"):
        train(TrainCfg(init="no-such-model", out="unused", **COMMON))


def test_head_stage_continues_a_trained_head_unless_asked(tmp_path, head_model):
    parent = load_weights_of(head_model)
    common = dict(COMMON, stage="head", init=str(head_model), max_steps=1)
    cont = train(TrainCfg(out=str(tmp_path / "cont"), lr=1e-9, **common))
    new = train(TrainCfg(out=str(tmp_path / "new"), head="new", lr=1e-9, **common))
    key = "fusion.out.weight" if "fusion.out.weight" in parent else next(
        k for k in parent if k.startswith("fusion.") and k.endswith("weight"))
    torch.testing.assert_close(load_weights_of(cont)[key], parent[key], atol=1e-6, rtol=0)
    assert not torch.allclose(load_weights_of(new)[key], parent[key])
    record = json.loads((cont / "config.json").read_text())["training"]
    assert record["head"] == "continued from the parent's"
    assert json.loads((new / "config.json").read_text())["training"]["head"] == "fresh"
    default = train(TrainCfg(out=str(tmp_path / "default"), **common))
    assert json.loads((default / "config.json").read_text())["training"]["lr"] == FINETUNE_LR
    fresh = json.loads((head_model / "config.json").read_text())["training"]
    assert fresh["lr"] == FRESH_LR and fresh["head"] == "fresh"


def load_weights_of(directory):
    from vitr_qdrant.encoders.model_dir import load_weights

    return load_weights(directory)


def test_trained_model_has_its_name_record_and_card(head_model, capsys):
    model = load_model(head_model, device="cpu")
    assert model.cfg.name == "tiny-head" and model.fingerprint["name"] == "tiny-head"
    t = model.cfg.training
    assert t["parent"]["name"] == "clip" and len(t["parent"]["weights_sha256"]) == 64
    assert t["command"].startswith("vitr train stage=head init=") and "max_steps=2" in t["command"]
    assert t["data"]["source"] == "object-scenes" and t["steps"] == 2
    card = (head_model / "MODEL_CARD.md").read_text()
    assert "# tiny-head" in card and "Parent: `clip`" in card and t["command"] in card
    assert "tiny-head" in model.card


def test_head_stage_stores_the_head_and_references_the_backbone(tmp_path, head_model):
    own = load_file(str(head_model / "model.safetensors"))
    assert own and not any(k.startswith("backbone.") for k in own)
    ref = json.loads((head_model / "config.json").read_text())["backbone_ref"]
    assert ref["path"].endswith("last") and len(ref["sha256"]) == 64
    assert not any(k.startswith("backbone.") for k in load_file(
        str(head_model.parent / "last" / "model.safetensors")))   # the checkpoint too
    # moved away from its backbone: the error names what is missing
    moved = tmp_path / "moved"
    shutil.copytree(head_model, moved)
    shutil.copytree(ref["path"], tmp_path / "clip-copy")
    loaded = load_model(moved, device="cpu")
    assert loaded.fingerprint["weights_sha256"] == load_model(head_model, device="cpu").fingerprint["weights_sha256"]
    config = json.loads((moved / "config.json").read_text())
    config["backbone_ref"]["path"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    with pytest.raises(vq.ModelNotFoundError, match=r"stores its trained head only.*gone.*not found"):
        load_model(moved, device="cpu")
    config["backbone_ref"]["path"] = str(tmp_path / "clip-copy")
    (moved / "config.json").write_text(json.dumps(config))
    state = load_file(str(tmp_path / "clip-copy" / "model.safetensors"))
    state["backbone.clip.logit_scale"] = state["backbone.clip.logit_scale"] + 1
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "clip-copy" / "model.safetensors"))
    with pytest.raises(vq.ModelFormatError, match="has changed since"):
        load_model(moved, device="cpu")


def test_learned_words_are_trained_and_stored_with_the_head(tmp_path, head_model):
    data = _csv(tmp_path, ["a zebra left of a cat", "a gnu above a dog", "a zebra below a gnu",
                           "the cat is above the zebra"])
    out = train(TrainCfg(**{**COMMON, "data": data}, stage="head", init=str(head_model),
                         out=str(tmp_path / "words"), max_steps=3))
    model = load_model(out, device="cpu")
    assert model.unknown_words("a zebra with a gnu") == [] and model.cfg.backbone.extra_words == ["zebra", "gnu"]
    assert model.cfg.training["new_words"] == ["zebra", "gnu"]
    assert "zebra, gnu" in (out / "MODEL_CARD.md").read_text()
    own = load_file(str(out / "model.safetensors"))
    assert [k for k in own if k.startswith("backbone.")] == [EMBEDDING]
    parent = load_weights_of(head_model)[EMBEDDING]
    ids = [model.backbone.tokenizer.vocab[w] for w in ("zebra", "gnu")]
    others = [i for i in range(parent.shape[0]) if i not in ids]
    assert torch.equal(own[EMBEDDING][others], parent[others])      # the known words stay frozen
    assert not torch.equal(own[EMBEDDING][ids], parent[[UNK, UNK]])  # the new ones learned
    train(TrainCfg(**{**COMMON, "data": data}, stage="head", init=str(head_model),
                   out=str(tmp_path / "words"), max_steps=4))        # resumes with the grown rows
    assert torch.load(out / "trainer.pt", weights_only=True)["step"] == 4
    assert load_model(out, device="cpu").cfg.backbone.extra_words == ["zebra", "gnu"]


def test_help_lists_every_option_with_default_and_meaning(capsys):
    from dataclasses import fields

    from vitr_qdrant.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for f in fields(TrainCfg):
        assert f"  {f.name}=" in text and f.metadata.get("help"), f.name
    assert 'batch_size=128  (int)' in text and "max_steps=null" in text
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "--data FILE" in capsys.readouterr().out


def test_log_has_step_1_and_the_last_line_names_the_model(tmp_path, capsys):
    from vitr_qdrant.cli import main

    options = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in COMMON.items()]
    assert main(["train", "model=vitr-tiny-objects", f"out={tmp_path / 'r'}", "max_steps=2",
                 *options]) == 0
    out = tmp_path / "r" / "last"
    log = [json.loads(line) for line in open(tmp_path / "r" / "log.jsonl")]
    assert [r["step"] for r in log] == [1, 2] and log[0]["samples_per_s"] > 0   # log_every=20
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("vitr train: model 'r' is in ") and str(out) in last and "not evaluated" in last


def test_ctrl_c_checkpoints_after_the_step_and_resumes(tmp_path, monkeypatch):
    import vitr_qdrant.encoders.train as T

    real = T.get_lr

    def ctrl_c_during_step_2(step, total, cfg):
        if step == 1:
            signal.raise_signal(signal.SIGINT)
        return real(step, total, cfg)

    cfg = TrainCfg(model="vitr-tiny-objects", out=str(tmp_path / "r"), max_steps=4,
                   **{**COMMON, "checkpoint_minutes": 60.0, "log_every": 1})
    monkeypatch.setattr(T, "get_lr", ctrl_c_during_step_2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    state = torch.load(tmp_path / "r" / "last" / "trainer.pt", weights_only=True)
    assert state["step"] == 2    # the step in flight finished, then the checkpoint
    monkeypatch.setattr(T, "get_lr", real)
    train(cfg)
    steps = [json.loads(line)["step"] for line in open(tmp_path / "r" / "log.jsonl")]
    assert steps == [1, 2, 3, 4]


def _bench_args(device: str, steps: int):
    import argparse

    return argparse.Namespace(model="vitr-tiny-objects", steps=steps, batch_size=4, pool_size=12,
                              render_size=96, workers=1, threads=1, device=device)


def test_bench_train_fields(tmp_path):
    import runpy
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_train.py"
    out = runpy.run_path(str(bench))["run"](_bench_args("cpu", 2), tmp_path)
    assert out["precision"] == "fp32" and out["world"] == "object-scenes"
    for stage in ("clip", "head"):
        assert out[stage]["steps"] == 2 and out[stage]["samples_per_s"] > 0
        assert out[stage]["peak_memory_mib"] is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_both_stages_train_in_bf16_on_the_gpu(tmp_path):
    import runpy
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_train.py"
    out = runpy.run_path(str(bench))["run"](_bench_args("cuda", 20), tmp_path)
    assert out["precision"] == "bf16 autocast"
    for stage in ("clip", "head"):
        assert out[stage]["steps"] == 20 and out[stage]["samples_per_s"] > 0
        assert out[stage]["peak_memory_mib"] > 0 and out[stage]["final_loss"] == out[stage]["final_loss"]
    model = load_model(tmp_path / "head" / "last", device="cuda")
    assert model.fingerprint["head_trained"] and model.device.type == "cuda"


def test_store_backbone_makes_a_self_contained_model(tmp_path, head_model):
    out = train(TrainCfg(**COMMON, stage="head", init=str(head_model), out=str(tmp_path / "own"),
                         max_steps=1, store_backbone=True))
    assert "backbone_ref" not in json.loads((out / "config.json").read_text())
    assert any(k.startswith("backbone.") for k in load_file(str(out / "model.safetensors")))


def test_text_local_encoder_takes_the_word_embedding_as_its_own_argument():
    from vitr_qdrant.encoders.config import LocalCfg
    from vitr_qdrant.encoders.local import TextLocalEncoder

    torch.manual_seed(0)
    enc = TextLocalEncoder(8, LocalCfg(dim=4, word_embed=True))
    tokens, mask = torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(vq.InputError, match="pass word_embed"):
        enc(tokens, mask)
    a, b = enc(tokens, mask, torch.randn(2, 3, 8)), enc(tokens, mask, torch.randn(2, 3, 8))
    assert a.shape == (2, 3, 4) and not torch.allclose(a, b)
    plain = TextLocalEncoder(8, LocalCfg(dim=4))
    assert plain(tokens, mask).shape == (2, 3, 4)
    # the model hands it over: a word_embed model's text tokens carry them, others' do not
    t = create_model("vitr-tiny-objects", device="cpu").text_tokens(["a dog left of a cat"])
    assert t.word_embed is not None and t.word_embed.shape == t.tokens.shape
    assert create_model("vitr-tiny-test", device="cpu").text_tokens(["red circle"]).word_embed is None


def test_init_by_registered_name_without_weights(tmp_path):
    out = train(TrainCfg(init="vitr-tiny-objects", stage="head", out=str(tmp_path / "n"),
                         max_steps=1, **COMMON))
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["parent"]["name"] == "vitr-tiny-objects"
    assert config["training"]["head"] == "fresh" and config["training"]["lr"] == FRESH_LR
    # a randomly initialised backbone cannot be found again by name: it is stored whole
    assert "backbone_ref" not in config
    assert any(k.startswith("backbone.") for k in load_file(str(out / "model.safetensors")))
