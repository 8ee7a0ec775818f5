"""The trainer on CPU with the tiny config: losses fall, checkpoints resume exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import vitr_qdrant as vq
from vitr_qdrant.encoders import create_model
from vitr_qdrant.encoders.data.scene_pool import CaptionSampler, build_pool, flip_caption
from vitr_qdrant.encoders.data.relation_scenes import truth
from vitr_qdrant.encoders.model_dir import FORMAT_VERSION
from vitr_qdrant.encoders.tasks import ClipTask, HeadTask
from vitr_qdrant.encoders.train import TrainCfg, get_lr, load_train_cfg, make_optimizer, train


@pytest.fixture(scope="module")
def pool():
    return build_pool(48, model_size=32, render_size=64, workers=1)


def _fit(task, idx, steps=6, lr=3e-3):
    params = [(n, p) for n, p in task.trainable() if p.requires_grad]
    opt = make_optimizer(params, TrainCfg(lr=lr, weight_decay=0.0), fused=False)
    losses = []
    for step in range(steps):
        loss = sum(task(idx, False, step)[0].values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_pool_partners_are_swapped_scenes(pool):
    assert len(pool.images) == len(pool.scenes) == len(pool.partner)
    assert pool.images.shape[1:] == (32, 32, 3) and pool.images.dtype == np.uint8
    linked = [i for i, p in enumerate(pool.partner) if p >= 0]
    assert linked, "some scenes must have a partner"
    for i in linked:
        j = pool.partner[i]
        assert pool.partner[j] == i
        a = {o.pair: (o.x, o.y) for o in pool.scenes[i].objects}
        b = {o.pair: (o.x, o.y) for o in pool.scenes[j].objects}
        moved = [k for k in a if a[k] != b[k]]
        assert len(moved) == 2 and a[moved[0]] == b[moved[1]]


def test_caption_sampler_gives_true_captions_and_false_negatives(pool):
    sampler = CaptionSampler(pool, seed=1)
    for i in range(len(pool)):
        pos, negs, ground = sampler.sample(i)
        assert truth(pool.scenes[i], pos) is True
        words = pos.split()
        a = [o for o in pool.scenes[i].objects if (o.x, o.y) == ground.centre_a][0]
        b = [o for o in pool.scenes[i].objects if (o.x, o.y) == ground.centre_b][0]
        assert words[slice(*ground.span_a)][-2:] == [a.color, a.shape]
        assert words[slice(*ground.span_b)][-2:] == [b.color, b.shape]
        assert all(truth(pool.scenes[i], n) is False for n in negs)


def test_flip_caption_exchanges_left_and_right():
    assert flip_caption("a red circle to the left of a blue star") == \
        "a red circle to the right of a blue star"
    assert flip_caption("red circle above blue star") == "red circle above blue star"


def test_clip_stage_lowers_loss_on_fixed_batch(pool):
    torch.manual_seed(0)
    model = create_model("vitr-tiny-test", device="cpu").train()
    task = ClipTask(model, TrainCfg(), pool, CaptionSampler(pool, seed=0))
    losses = _fit(task, np.arange(16))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("stem", [0, 8])
def test_head_stage_lowers_loss_and_keeps_backbone_frozen(pool, stem):
    torch.manual_seed(0)
    model = create_model("vitr-tiny-test", device="cpu", local={"stem": stem}).train()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    task = HeadTask(model, TrainCfg(in_batch_negatives=4, attr_weight=float(stem > 0)), pool,
                    CaptionSampler(pool, seed=0))
    losses = _fit(task, np.arange(16))
    assert losses[-1] < losses[0]
    for k, v in model.backbone.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainCfg(lr=1.0, warmup_steps=10)
    assert get_lr(0, 100, cfg) == pytest.approx(0.1)
    assert get_lr(9, 100, cfg) == pytest.approx(1.0)
    assert get_lr(55, 100, cfg) < get_lr(20, 100, cfg)
    assert get_lr(100, 100, cfg) == pytest.approx(0.05)


def test_config_overrides_and_unknown_keys(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"epochs": 3, "stage": "head"}))
    cfg = load_train_cfg(str(f), ["batch_size=8", "flip=false", "out=x"])
    assert (cfg.epochs, cfg.stage, cfg.batch_size, cfg.flip, cfg.out) == (3, "head", 8, False, "x")
    with pytest.raises(ValueError, match="unknown training options"):
        load_train_cfg(None, ["epoch=3"])
    for bad, message in (("epochs=three", "epochs='three' must be int"), ("flip=2", "flip=2 must be bool"),
                         ("lr=fast", "lr='fast' must be float"), ("init=3", "init=3 must be str or None")):
        with pytest.raises(vq.InputError, match=message):
            load_train_cfg(None, [bad])
    cfg = load_train_cfg(None, ["lr=1", "init=null", "max_steps=5", "device=cpu"])
    assert (cfg.lr, cfg.init, cfg.max_steps) == (1.0, None, 5) and isinstance(cfg.lr, float)


def test_resume_restores_step_optimizer_and_schedule(tmp_path):
    common = dict(model="vitr-tiny-test", pool_size=40, render_size=64, batch_size=8,
                  eval_every=0, workers=1, out=str(tmp_path / "run"), warmup_steps=2,
                  device="cpu", log_every=1)
    train(TrainCfg(max_steps=3, epochs=1, **common))
    first = torch.load(tmp_path / "run" / "last" / "trainer.pt", weights_only=True)
    assert first["step"] == 3
    saved = json.loads((tmp_path / "run" / "last" / "config.json").read_text())   # saved by model_dir
    assert saved["format_version"] == FORMAT_VERSION and saved["library_version"] == vq.__version__
    train(TrainCfg(max_steps=5, epochs=1, **common))
    second = torch.load(tmp_path / "run" / "last" / "trainer.pt", weights_only=True)
    assert second["step"] == 5
    steps = [json.loads(line)["step"] for line in open(tmp_path / "run" / "log.jsonl")]
    assert steps == [1, 2, 3, 4, 5]  # resumed at 4, not from scratch
    lrs = [json.loads(line)["lr"] for line in open(tmp_path / "run" / "log.jsonl")]
    cfg = TrainCfg(max_steps=5, **common)
    assert lrs[3:] == pytest.approx([get_lr(s, 5, cfg) for s in (3, 4)])
    exp_avg = second["optimizer"]["state"][0]["exp_avg"]
    assert float(second["optimizer"]["state"][0]["step"]) == 5  # Adam moments carried over
    assert torch.isfinite(exp_avg).all()


def test_trains_on_a_real_format_dataset(tmp_path):
    from vitr_qdrant.datasets.relation_scenes import render, sample_scene

    rows = ["image,caption"]
    for i in range(12):
        render(sample_scene(i), 64).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,scene number {i}")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    common = dict(model="vitr-tiny-test", data=str(tmp_path / "data.csv"), batch_size=4,
                  eval_every=0, workers=1, device="cpu", max_steps=2, log_every=1)
    train(TrainCfg(out=str(tmp_path / "clip"), **common))
    train(TrainCfg(stage="head", init=str(tmp_path / "clip" / "last"),
                   out=str(tmp_path / "head"), **common))
    log = [json.loads(line) for line in open(tmp_path / "head" / "log.jsonl")]
    assert [r["step"] for r in log] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in log)


@pytest.mark.parametrize("stage", ["clip", "head"])
def test_an_interrupted_run_resumes_exactly(tmp_path, monkeypatch, stage):
    from safetensors.torch import load_file

    import vitr_qdrant.encoders.train as T

    common = dict(model="vitr-tiny-objects", data="object-scenes", styles=True, pool_size=24,
                  render_size=96, batch_size=4, epochs=2, eval_every=0, workers=1, device="cpu",
                  threads=1, warmup_steps=2, checkpoint_minutes=0, log_every=1, augment=0.5,
                  in_batch_negatives=2, attr_weight=1.0)
    if stage == "head":
        train(TrainCfg(out=str(tmp_path / "clip"), max_steps=2, **common))
        common.update(stage="head", init=str(tmp_path / "clip" / "last"), augment=0.0)
    train(TrainCfg(out=str(tmp_path / "whole"), **common))

    real = T.get_lr

    def stop_at_step_4(step, total, cfg):
        if step == 4:
            raise KeyboardInterrupt   # the machine going away mid-run
        return real(step, total, cfg)

    monkeypatch.setattr(T, "get_lr", stop_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(TrainCfg(out=str(tmp_path / "split"), **common))
    monkeypatch.setattr(T, "get_lr", real)
    train(TrainCfg(out=str(tmp_path / "split"), **common))   # resumes at step 4
    whole = load_file(str(tmp_path / "whole" / "last" / "model.safetensors"))
    split = load_file(str(tmp_path / "split" / "last" / "model.safetensors"))
    for name, value in whole.items():
        torch.testing.assert_close(split[name], value, rtol=0, atol=1e-6)
    steps = [json.loads(line)["step"] for line in open(tmp_path / "split" / "log.jsonl")]
    assert steps == list(range(1, len(steps) + 1))   # each step logged once: none redone, none lost


def test_a_checkpoint_resumes_only_into_the_run_that_made_it(tmp_path):
    from vitr_qdrant.errors import InputError

    common = dict(data="object-scenes", pool_size=12, render_size=96, batch_size=4, epochs=2,
                  eval_every=0, workers=1, device="cpu", threads=1, warmup_steps=1,
                  checkpoint_minutes=0, log_every=1, in_batch_negatives=2)
    clip = tmp_path / "clip"
    train(TrainCfg(model="vitr-tiny-objects", out=str(clip), max_steps=2, **common))
    # another model config (vitr-tiny-test has no conv region stem and no word-embedding input)
    with pytest.raises(InputError, match=r"another model \(its config\).*has \['image_local\.stem"):
        train(TrainCfg(model="vitr-tiny-test", out=str(clip), **common))
    head = dict(common, model="vitr-tiny-objects", stage="head", init=str(clip / "last"))
    train(TrainCfg(out=str(tmp_path / "head"), max_steps=2, attr_weight=1.0, **head))
    with pytest.raises(InputError, match=r"another task setup \(its extras\).*attr"):
        train(TrainCfg(out=str(tmp_path / "head"), attr_weight=0.0, **head))
