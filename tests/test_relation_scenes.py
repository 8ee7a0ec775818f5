"""Relation Scenes v1 conformance (shared spec): sampling, rendering, relations, captions."""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from vitr_qdrant.datasets import relation_scenes as rs
from vitr_qdrant.datasets.relation_scenes import (COLORS, HELD_OUT, Scene, SceneObject, caption,
                                                  hard_negatives, pair_example, parse_caption,
                                                  related_pairs, relation, render, sample_scene,
                                                  swap_centres, truth)

N_SCENES = 300


def obj(color: str, shape: str, x: float, y: float, size_name: str = "small",
        size: float = 0.16) -> SceneObject:
    return SceneObject(shape, color, size_name, size, x, y, COLORS[color])


@pytest.fixture(scope="module")
def scenes() -> dict[str, list[Scene]]:
    return {split: [sample_scene(seed, split) for seed in range(N_SCENES)] for split in rs.SPLITS}


# --- sampling (spec sections 1, 2, 5, 6) ----------------------------------------------------

def test_scene_attributes_in_range(scenes):
    for scene in itertools.chain(*scenes.values()):
        assert 2 <= len(scene.objects) <= 4
        assert 200 <= scene.background <= 240
        assert 0 <= scene.noise_sigma <= 6
        for o in scene.objects:
            assert o.shape in rs.SHAPES and o.color in COLORS
            lo, hi = {"small": (0.14, 0.18), "large": (0.26, 0.32)}[o.size_name]
            assert lo <= o.size <= hi
            assert all(abs(c - base) <= 12 for c, base in zip(o.rgb, COLORS[o.color]))
            assert -10 <= o.angle <= 10


def test_object_counts_cover_two_to_four(scenes):
    assert {len(s.objects) for s in scenes["train"]} == {2, 3, 4}


def test_placement_inside_canvas_with_gap(scenes):
    for scene in itertools.chain(*scenes.values()):
        for o in scene.objects:
            half = o.size / 2
            assert 0.03 <= o.x - half and o.x + half <= 0.97
            assert 0.03 <= o.y - half and o.y + half <= 0.97
        for a, b in itertools.combinations(scene.objects, 2):
            # bounding squares are apart by >= 0.02 along at least one axis
            gap = max(abs(a.x - b.x), abs(a.y - b.y)) - (a.size + b.size) / 2
            assert gap >= 0.02 - 1e-12


def test_color_shape_pairs_unique(scenes):
    for scene in itertools.chain(*scenes.values()):
        pairs = [o.pair for o in scene.objects]
        assert len(pairs) == len(set(pairs))


def test_held_out_pairs_never_in_train_or_iid(scenes):
    assert len(HELD_OUT) == 8
    for split in ("train", "test-iid"):
        for scene in scenes[split]:
            assert not any(o.pair in HELD_OUT for o in scene.objects)


def test_every_test_comp_scene_and_captioned_pair_has_held_out(scenes):
    for scene in scenes["test-comp"]:
        assert any(o.pair in HELD_OUT for o in scene.objects)
        for a, _, b in related_pairs(scene):
            assert a.pair in HELD_OUT or b.pair in HELD_OUT


def test_held_out_design_each_colour_once_each_shape_twice():
    assert sorted(c for c, _ in HELD_OUT) == sorted(COLORS)
    assert all(sum(s == shape for _, s in HELD_OUT) == 2 for shape in rs.SHAPES)


def test_sampling_deterministic_per_seed_and_split():
    assert sample_scene(7, "train") == sample_scene(7, "train")
    assert sample_scene(7, "train") != sample_scene(8, "train")
    assert sample_scene(7, "train") != sample_scene(7, "test-iid")
    a, b = render(sample_scene(7)), render(sample_scene(7))
    assert a.tobytes() == b.tobytes()


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        sample_scene(0, "validation")
    with pytest.raises(ValueError):
        sample_scene(0, "train", n_objects=5)
    with pytest.raises(ValueError):
        render(sample_scene(0), size=32)


def test_n_objects_respected():
    assert len(sample_scene(3, "test-comp", n_objects=4).objects) == 4


# --- rendering (sections 1, 2) --------------------------------------------------------------

@pytest.mark.parametrize("size", [96, 128])
def test_render_rgb_and_centre_pixels(size):
    for seed in range(25):
        scene = sample_scene(seed, "test-comp")
        image = render(scene, size)
        assert image.mode == "RGB" and image.size == (size, size)
        clean = np.asarray(render(replace(scene, noise_sigma=0.0), size)).astype(int)
        noisy = np.asarray(image).astype(int)
        for o in scene.objects:
            row, col = int(o.y * size), int(o.x * size)
            assert np.abs(clean[row, col] - o.rgb).max() <= 1
            assert np.abs(clean[row, col] - COLORS[o.color]).max() <= 12 + 1
            assert np.abs(noisy[row, col] - o.rgb).max() <= 5 * scene.noise_sigma + 1


def test_background_is_uniform_grey_without_noise():
    scene = replace(sample_scene(11), noise_sigma=0.0)
    arr = np.asarray(render(scene))
    for corner in (arr[0, 0], arr[0, -1], arr[-1, 0], arr[-1, -1]):
        assert tuple(corner) == (scene.background,) * 3


def test_noise_same_on_all_channels():
    scene = replace(sample_scene(11), noise_sigma=5.0)
    arr = np.asarray(render(scene)).astype(int)
    corner = arr[:4, :4]  # background only (objects keep a 0.03 margin)
    assert (corner[..., 0] == corner[..., 1]).all() and (corner[..., 1] == corner[..., 2]).all()
    assert corner[..., 0].std() > 0


# --- relations (section 3) ------------------------------------------------------------------

@pytest.mark.parametrize("dx,dy,expected", [
    (0.15, 0.0, "left of"), (0.15, 0.075, "left of"), (0.15, -0.075, "left of"),
    (-0.15, 0.075, "right of"), (0.0, 0.15, "above"), (0.075, 0.15, "above"),
    (-0.075, -0.15, "below"), (0.0, -0.15, "below"),
    (0.1499, 0.0, None), (0.0, -0.1499, None), (0.2, 0.1001, None), (0.1001, 0.2, None),
    (0.3, 0.3, None), (0.0, 0.0, None),
])
def test_relation_thresholds(dx, dy, expected):
    a = obj("red", "circle", 0.0, 0.0)
    b = obj("blue", "square", dx, dy)
    assert relation(a, b) == expected


def test_relation_antisymmetric():
    for scene in (sample_scene(s) for s in range(100)):
        for a, b in itertools.permutations(scene.objects, 2):
            r = relation(a, b)
            assert relation(b, a) == (rs.OPPOSITE[r] if r else None)


# --- captions and truth (section 4) ---------------------------------------------------------

@pytest.fixture()
def scene() -> Scene:
    # red circle (small) left of blue square (large); green star above the blue square;
    # the red circle and the green star have no relation (diagonal).
    objects = (obj("red", "circle", 0.12, 0.7), obj("blue", "square", 0.7, 0.7, "large", 0.3),
               obj("green", "star", 0.7, 0.25))
    return Scene(objects, background=220, noise_sigma=0.0, seed=0)


@pytest.mark.parametrize("template", range(4))
@pytest.mark.parametrize("with_size", [False, True])
def test_truth_on_all_templates(scene, template, with_size):
    red, blue, green = scene.objects
    def cap(a, rel, b):
        return caption(a, rel, b, template, with_size)
    assert truth(scene, cap(red, "left of", blue)) is True
    assert truth(scene, cap(blue, "right of", red)) is True
    assert truth(scene, cap(green, "above", blue)) is True
    assert truth(scene, cap(blue, "below", green)) is True
    assert truth(scene, cap(blue, "left of", red)) is False      # swap
    assert truth(scene, cap(red, "right of", blue)) is False     # opposite
    assert truth(scene, cap(red, "above", blue)) is False        # other relation
    assert truth(scene, cap(red, "left of", green)) is None      # no relation
    assert parse_caption(cap(red, "left of", blue))[1] == "left of"


def test_caption_surface_forms(scene):
    red, blue, _ = scene.objects
    assert caption(red, "left of", blue) == "red circle left of blue square"
    assert caption(red, "left of", blue, 1, True) == \
        "a small red circle to the left of a large blue square"
    assert caption(red, "left of", blue, 2) == "the red circle is to the left of the blue square"
    assert caption(red, "left of", blue, 3) == \
        "there is a red circle to the left of a blue square"


def test_truth_absent_objects_and_size_mismatch(scene):
    assert truth(scene, "yellow circle left of blue square") is False
    assert truth(scene, "red circle left of purple star") is False
    assert truth(scene, "red square left of blue square") is False       # shape differs
    assert truth(scene, "large red circle left of blue square") is False  # red circle is small
    assert truth(scene, "small red circle left of large blue square") is True
    assert truth(scene, "small red circle left of small blue square") is False
    assert truth(scene, "red circle left of red circle") is None          # one object twice


def test_truth_normalises_case_and_full_stop(scene):
    assert truth(scene, "The Red circle is to the left of the blue square.") is True


@pytest.mark.parametrize("text", ["", "red circle", "red circle near blue square",
                                  "pink circle left of blue square",
                                  "red hexagon left of blue square", "circle left of square"])
def test_unparsable_caption_raises(scene, text):
    with pytest.raises(ValueError):
        truth(scene, text)


# --- negatives, swapped centres, pair test (section 7) ---------------------------------------

def test_hard_negatives_are_false(scenes):
    for scene in scenes["test-comp"][:100]:
        for a, rel, b in related_pairs(scene):
            for template in range(4):
                negs = hard_negatives(scene, a, rel, b, with_size=template % 2 == 1,
                                      template=template)
                assert {"swap", "opposite"} <= set(negs)
                assert all(truth(scene, text) is False for text in negs.values())


def test_swap_centres_exchanges_and_reverses(scene):
    red, blue, green = scene.objects
    # a blue square in the red circle's place would leave the canvas: rejected
    assert swap_centres(scene, red, blue) is None
    small = Scene((obj("red", "circle", 0.2, 0.5), obj("blue", "square", 0.7, 0.5)),
                  220, 0.0, 0)
    swapped = swap_centres(small, *small.objects)
    a, b = swapped.objects
    assert (a.x, a.y, b.x, b.y) == (0.7, 0.5, 0.2, 0.5)
    assert truth(swapped, "blue square left of red circle") is True
    assert truth(swapped, "red circle left of blue square") is False


@pytest.mark.parametrize("split", rs.SPLITS)
def test_pair_example(split):
    for seed in range(20):
        one, two, c, c_swapped = pair_example(seed, split)
        assert truth(one, c) is True and truth(one, c_swapped) is False
        assert truth(two, c_swapped) is True and truth(two, c) is False
        moved = [(p, q) for p, q in zip(one.objects, two.objects) if p != q]
        assert len(moved) == 2
        (a1, a2), (b1, b2) = moved
        assert (a2.x, a2.y, b2.x, b2.y) == (b1.x, b1.y, a1.x, a1.y)
        assert (one.background, one.noise_sigma, one.seed) == \
            (two.background, two.noise_sigma, two.seed)
    assert pair_example(3, split) == pair_example(3, split)


# --- an independent reading of the spec, compared on many scenes and captions ----------------

REL_WORDS = ("to the left of", "to the right of", "left of", "right of", "above", "below")


def _ref_relation(a: SceneObject, b: SceneObject) -> str | None:
    dx, dy = b.x - a.x, b.y - a.y
    for name, main, cross in (("left of", dx, dy), ("right of", -dx, dy),
                              ("above", dy, dx), ("below", -dy, dx)):
        if main >= 0.15 and abs(cross) <= 0.5 * abs(main):
            return name
    return None


def _ref_phrase(words: list[str]) -> tuple[str | None, str, str]:
    if words and words[0] in ("a", "the"):
        words = words[1:]
    if words and words[-1] == "is":
        words = words[:-1]
    return (words[0] if len(words) == 3 else None, words[-2], words[-1])


def _ref_truth(scene: Scene, text: str) -> bool | None:
    text = text.lower().rstrip(".").removeprefix("there is ")
    rel = next(r for r in REL_WORDS if f" {r} " in text)
    left, right = text.split(f" {rel} ")
    found = []
    for size, color, shape in (_ref_phrase(left.split()), _ref_phrase(right.split())):
        found.append([o for o in scene.objects if (o.color, o.shape) == (color, shape)
                      and size in (None, o.size_name)])
    if not found[0] or not found[1]:
        return False
    if len(found[0]) > 1 or len(found[1]) > 1 or found[0][0] is found[1][0]:
        return None
    held = _ref_relation(found[0][0], found[1][0])
    return None if held is None else held == rel.removeprefix("to the ")


def test_truth_agrees_with_independent_reading(scenes):
    rng = np.random.default_rng(0)
    checked = 0
    for scene in scenes["test-comp"][:150] + scenes["train"][:150]:
        for _ in range(20):
            a = scene.objects[rng.integers(len(scene.objects))]
            b = (scene.objects[rng.integers(len(scene.objects))] if rng.random() < 0.8 else
                 obj(*rs.ALL_PAIRS[rng.integers(len(rs.ALL_PAIRS))], 0.5, 0.5,
                     str(rng.choice(["small", "large"]))))
            if rng.random() < 0.2:
                a = replace(a, size_name="small" if a.size_name == "large" else "large")
            text = caption(a, str(rng.choice(rs.RELATIONS)), b, int(rng.integers(4)),
                           bool(rng.random() < 0.5))
            assert truth(scene, text) == _ref_truth(scene, text), text
            checked += 1
        for a, b in itertools.permutations(scene.objects, 2):
            assert relation(a, b) == _ref_relation(a, b)
    assert checked == 6000
