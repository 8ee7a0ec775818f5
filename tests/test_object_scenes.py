"""Object Scenes v1 conformance (shared spec object-scenes.md, and relation-scenes.md where it is
silent): categories, held-out pairs, sampling, rendering, relations, captions and truth, hard
negatives, the pair test, the datasets and the evaluation protocol."""
from __future__ import annotations

import colorsys
import itertools
import json
import math
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from vitr_qdrant.datasets import object_scenes as osc
from vitr_qdrant.datasets.object_scenes import (ART_SETS, CATEGORIES, Background, Scene,
                                                SceneObject, caption, hard_negatives, held_out,
                                                pair_example, parse_caption, placement_ok,
                                                related_pairs, relation, render, sample_scene,
                                                truth)
from vitr_qdrant.encoders.baselines import bag_scorer, oracle_scorer
from vitr_qdrant.encoders.data.art import sprite
from vitr_qdrant.encoders.data.scenes_dataset import (ObjectScenesDataset, load_split,
                                                      make_example, write_split)
from vitr_qdrant.encoders.evaluation import build_eval_set, evaluate

N_SCENES = 300
SPLITS = ("train", "test-iid", "test-comp")
FOUR_SETS = ("noto", "twemoji", "fluent-flat", "emojione")
OPP = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

# Spec section 2, typed from the spec's table (index = position).
SPEC_CATEGORIES = (
    "dog cat horse cow pig sheep goat rabbit mouse chicken "
    "duck owl eagle penguin fish whale dolphin octopus crab frog "
    "turtle snake crocodile elephant lion tiger bear koala monkey gorilla "
    "camel deer fox wolf rhino squirrel snail butterfly bee ant "
    "ladybug spider car bus truck tractor ambulance bicycle motorcycle scooter "
    "train airplane helicopter rocket sailboat ship canoe apple banana orange "
    "pear strawberry cherry lemon watermelon pineapple peach kiwi avocado tomato "
    "carrot potato eggplant mushroom pepper pizza burger hot_dog croissant cake "
    "egg cheese donut cookie ice_cream cup bottle wine_glass knife spoon "
    "bed light_bulb clock book phone laptop television camera key umbrella "
    "soccer_ball basketball guitar hat shoe handbag backpack pencil door balloon "
    "gift candle tree cactus rose sunflower house castle"
)
SPEC_NOUNS = tuple(w.replace("_", " ") for w in SPEC_CATEGORIES.split())
TWO_WORD = tuple(n for n in SPEC_NOUNS if " " in n)


def obj(category: str, x: float, y: float, size_name: str = "small", size: float = 0.18,
        angle: float = 0.0, mirrored: bool = False) -> SceneObject:
    return SceneObject(category, size_name, size, x, y, angle, mirrored)


def flat(rgb=(200.0, 200.0, 200.0)) -> Background:
    return Background("flat", (tuple(rgb), tuple(rgb)))


def scene_of(*objects: SceneObject, bg: Background | None = None, art: str = "noto",
             split: str = "train", sigma: float = 0.0, seed: int = 0) -> Scene:
    return Scene(tuple(objects), bg or flat(), sigma, seed, split, art)


def pixels(scene: Scene, size: int = 128) -> np.ndarray:
    return np.asarray(render(scene, size)).astype(int)


@pytest.fixture(scope="module")
def scenes() -> dict[str, list[Scene]]:
    return {split: [sample_scene(seed, split) for seed in range(N_SCENES)] for split in SPLITS}


def all_scenes(scenes):
    return itertools.chain(*scenes.values())


# --- categories, art sets, held-out pairs (sections 1, 2, 6) ----------------------------------

def test_categories_match_spec_table():
    assert len(SPEC_NOUNS) == 118
    assert tuple(CATEGORIES) == SPEC_NOUNS
    assert set(TWO_WORD) == {"hot dog", "ice cream", "wine glass", "light bulb", "soccer ball"}


def test_art_sets_are_among_the_four():
    assert ART_SETS and set(ART_SETS) <= set(FOUR_SETS)
    assert len(set(ART_SETS)) == len(ART_SETS)


def test_shipped_licences_hold_the_full_apache_text():
    """Section 1: the package ships each set's licence; noto's is Apache-2.0, in full."""
    from importlib.resources import files

    text = (files("vitr_qdrant.encoders.data") / "art" / "LICENSES.md").read_text("utf-8")
    start = text.index("Apache License\n                           Version 2.0, January 2004")
    body = text[start:]
    for clause in ("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
                   "2. Grant of Copyright License.", "4. Redistribution.",
                   "9. Accepting Warranty or Additional Liability.", "END OF TERMS AND CONDITIONS"):
        assert clause in body, clause


def test_held_out_count_rule_and_examples():
    pairs = list(itertools.combinations(SPEC_NOUNS, 2))
    assert len(pairs) == 6903
    out = [p for p in pairs if held_out(*p)]
    assert len(out) == 767
    index = {n: i for i, n in enumerate(SPEC_NOUNS)}
    assert all(held_out(a, b) == ((index[a] + index[b]) % 9 == 4) for a, b in pairs)
    for a, b in [("dog", "pig"), ("cat", "cow"), ("dog", "crocodile"), ("car", "bus")]:
        assert held_out(a, b) and held_out(b, a)
    assert not held_out("dog", "cat") and not held_out("hot dog", "dog")


def test_held_out_symmetric_and_unknown_noun_raises():
    rng = np.random.default_rng(1)
    for _ in range(500):
        a, b = rng.choice(SPEC_NOUNS, 2, replace=False)
        assert held_out(a, b) == held_out(b, a)
    for bad in [("unicorn", "dog"), ("dog", "unicorn"), ("Dog", "cat"), ("dogs", "cat")]:
        with pytest.raises(ValueError):
            held_out(*bad)


# --- sampling (sections 3, 4, 7) -----------------------------------------------------------

def test_scene_attributes_in_range(scenes):
    for scene in all_scenes(scenes):
        assert 2 <= len(scene.objects) <= 4
        cats = [o.category for o in scene.objects]
        assert len(set(cats)) == len(cats) and set(cats) <= set(SPEC_NOUNS)
        assert scene.art in ART_SETS
        assert 0 <= scene.noise_sigma <= 6
        for o in scene.objects:
            lo, hi = {"small": (0.16, 0.22), "large": (0.28, 0.34)}[o.size_name]
            assert lo <= o.size <= hi
            assert -10 <= o.angle <= 10
            assert isinstance(o.mirrored, bool)
        bg = scene.background
        assert bg.kind in ("flat", "gradient", "horizon")
        for rgb in bg.colors[:1] if bg.kind == "flat" else bg.colors:
            assert all(0 <= c <= 255 for c in rgb)
            _, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
            assert s <= 0.35 + 1e-9 and 0.55 - 1e-9 <= v <= 0.95 + 1e-9
        if bg.kind == "horizon":
            assert 0.45 <= bg.horizon <= 0.75
        if bg.kind == "gradient":
            assert 0 <= bg.angle < 360


def test_every_variation_occurs(scenes):
    every = list(all_scenes(scenes))
    assert {len(s.objects) for s in scenes["train"]} == {2, 3, 4}
    assert {len(s.objects) for s in scenes["test-comp"]} == {2, 3, 4}
    kinds = Counter(s.background.kind for s in every)
    assert set(kinds) == {"flat", "gradient", "horizon"}
    assert min(kinds.values()) > 0.25 * len(every)        # uniform over the three
    arts = Counter(s.art for s in every)
    assert set(arts) == set(ART_SETS)
    assert min(arts.values()) > 0.6 * len(every) / len(ART_SETS)
    objects = [o for s in every for o in s.objects]
    mirrored = sum(o.mirrored for o in objects) / len(objects)
    assert 0.42 < mirrored < 0.58
    sizes = Counter(o.size_name for o in objects)
    assert set(sizes) == {"small", "large"} and min(sizes.values()) > 0.4 * len(objects)
    angles = np.array([o.angle for o in objects])
    assert angles.min() < -9 and angles.max() > 9
    sigmas = np.array([s.noise_sigma for s in every])
    assert sigmas.min() < 0.5 and sigmas.max() > 5.5
    hues = [colorsys.rgb_to_hsv(*(c / 255 for c in s.background.colors[0]))[0] for s in every]
    assert np.histogram(hues, bins=4, range=(0, 1))[0].min() > 0.1 * len(every)


def test_every_category_is_seen_in_training(scenes):
    seen = {o.category for s in scenes["train"] for o in s.objects}
    seen |= {o.category for seed in range(N_SCENES, 2 * N_SCENES)
             for o in sample_scene(seed, "train").objects}
    assert seen == set(SPEC_NOUNS)


def test_placement_inside_canvas_with_gap(scenes):
    for scene in all_scenes(scenes):
        for o in scene.objects:
            half = o.size / 2
            assert 0.03 <= o.x - half and o.x + half <= 0.97
            assert 0.03 <= o.y - half and o.y + half <= 0.97
        for a, b in itertools.combinations(scene.objects, 2):
            gap = max(abs(a.x - b.x), abs(a.y - b.y)) - (a.size + b.size) / 2
            assert gap >= 0.02 - 1e-12
        assert placement_ok(scene.objects)


def test_art_argument_respected_and_layout_independent_of_art():
    for seed in range(30):
        for split in SPLITS:
            base = sample_scene(seed, split)
            for art in ART_SETS:
                one = sample_scene(seed, split, art=art)
                assert one.art == art
                assert (one.objects, one.background, one.noise_sigma) == \
                    (base.objects, base.background, base.noise_sigma)
    chosen = {sample_scene(seed, "train", art=["noto", "emojione"]).art for seed in range(60)}
    assert chosen == {"noto", "emojione"}
    assert {sample_scene(s, "train", art=("twemoji",)).art for s in range(10)} == {"twemoji"}


def test_n_objects_respected():
    for n in (2, 3, 4):
        for split in SPLITS:
            for seed in range(5):
                assert len(sample_scene(seed, split, n_objects=n).objects) == n


@pytest.mark.parametrize("kwargs", [dict(split="validation"), dict(split="test"),
                                    dict(n_objects=1), dict(n_objects=5), dict(n_objects=0),
                                    dict(art="openmoji"), dict(art="Noto"), dict(art=""),
                                    dict(art=["noto", "openmoji"])])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        sample_scene(0, **kwargs)


def test_sampling_deterministic_per_seed_and_split():
    for split in SPLITS:
        assert sample_scene(7, split) == sample_scene(7, split)
        assert sample_scene(7, split) != sample_scene(8, split)
    assert sample_scene(7, "train") != sample_scene(7, "test-iid")
    assert sample_scene(7, "test-iid").split == "test-iid" and sample_scene(7).split == "train"
    assert sample_scene(2 ** 40 + 3, "train") != sample_scene(3, "train")


# --- held-out compositions and splits (sections 6, 7) -----------------------------------------

def test_held_out_pairs_never_together_in_train_or_test_iid(scenes):
    for split in ("train", "test-iid"):
        for scene in scenes[split]:
            for a, b in itertools.combinations(scene.objects, 2):
                assert not held_out(a.category, b.category)


def test_test_comp_scenes_hold_a_related_held_out_pair(scenes):
    for scene in scenes["test-comp"]:
        assert any(held_out(a.category, b.category) and relation(a, b) is not None
                   for a, b in itertools.permutations(scene.objects, 2))
        pairs = related_pairs(scene)
        assert pairs
        for a, rel, b in pairs:
            assert held_out(a.category, b.category) and relation(a, b) == rel
    # the other objects may be anything: some test-comp scenes hold non-held-out pairs too
    assert any(not held_out(a.category, b.category) for s in scenes["test-comp"]
               for a, b in itertools.combinations(s.objects, 2))


def test_related_pairs_outside_test_comp_are_all_related_pairs(scenes):
    for scene in scenes["train"][:100]:
        expected = {(a.category, b.category) for a, b in itertools.permutations(scene.objects, 2)
                    if relation(a, b) is not None}
        assert {(a.category, b.category) for a, _, b in related_pairs(scene)} == expected


# --- relations (relation-scenes.md section 3) -------------------------------------------------

@pytest.mark.parametrize("dx,dy,expected", [
    (0.15, 0.0, "left of"), (0.15, 0.075, "left of"), (0.15, -0.075, "left of"),
    (-0.15, 0.075, "right of"), (-0.15, -0.075, "right of"), (0.0, 0.15, "above"),
    (0.075, 0.15, "above"), (-0.075, 0.15, "above"), (-0.075, -0.15, "below"),
    (0.0, -0.15, "below"), (0.6, 0.3, "left of"), (-0.3, -0.6, "below"),
    (0.1499, 0.0, None), (-0.1499, 0.0, None), (0.0, 0.1499, None), (0.0, -0.1499, None),
    (0.2, 0.1001, None), (0.1001, 0.2, None), (-0.2, -0.1001, None), (0.3, 0.3, None),
    (0.0, 0.0, None),
])
def test_relation_thresholds(dx, dy, expected):
    a = obj("dog", 0.0, 0.0)
    b = obj("cat", dx, dy)
    assert relation(a, b) == expected


def test_relation_antisymmetric(scenes):
    for scene in scenes["train"][:150]:
        for a, b in itertools.permutations(scene.objects, 2):
            r = relation(a, b)
            assert relation(b, a) == (OPP[r] if r else None)


# --- rendering (sections 3, 4) --------------------------------------------------------------

@pytest.mark.parametrize("size", [96, 128, 160])
def test_render_rgb_size_and_deterministic(size):
    scene = sample_scene(3, "test-comp")
    image = render(scene, size)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (size, size)
    assert render(scene, size).tobytes() == image.tobytes()
    assert render(scene).size == (128, 128)


def test_render_size_below_96_raises():
    for size in (95, 64, 32):
        with pytest.raises(ValueError):
            render(sample_scene(0), size)


def test_flat_background_corners_equal_its_colour(scenes):
    found = 0
    for scene in (s for s in all_scenes(scenes) if s.background.kind == "flat"):
        arr = pixels(replace(scene, noise_sigma=0.0))
        colour = np.rint(scene.background.colors[0]).astype(int)
        for corner in (arr[0, 0], arr[0, -1], arr[-1, 0], arr[-1, -1], arr[2, 2]):
            assert (corner == colour).all()
        found += 1
        if found == 15:
            break
    assert found == 15


def test_horizon_background_rows(scenes):
    found, size = 0, 128
    for scene in (s for s in all_scenes(scenes) if s.background.kind == "horizon"):
        bg = scene.background
        arr = pixels(replace(scene, noise_sigma=0.0), size)
        top, bottom = (np.rint(c).astype(int) for c in bg.colors)
        assert (arr[0] == top).all() and (arr[-1] == bottom).all()
        line = bg.horizon * size
        for row in range(size):  # the left edge column is background
            if row + 1 <= line:             # the row straddling the line may be either
                assert (arr[row, 0] == top).all(), row
            elif row >= line:
                assert (arr[row, 0] == bottom).all(), row
        found += 1
        if found == 15:
            break
    assert found == 15


def _corner_extremes(angle: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """(row, col) pixel of the corner furthest back and furthest ahead along ``angle`` (y down)."""
    d = (math.cos(math.radians(angle)), math.sin(math.radians(angle)))
    corners = {(r, c): (c != 0) * d[0] + (r != 0) * d[1] for r in (0, -1) for c in (0, -1)}
    return min(corners, key=corners.get), max(corners, key=corners.get)


def test_gradient_background_corners(scenes):
    found = 0
    for scene in (s for s in all_scenes(scenes) if s.background.kind == "gradient"):
        bg = scene.background
        arr = pixels(replace(scene, noise_sigma=0.0))
        back, ahead = _corner_extremes(bg.angle)
        assert np.abs(arr[back] - np.asarray(bg.colors[0])).max() <= 2
        assert np.abs(arr[ahead] - np.asarray(bg.colors[1])).max() <= 2
        found += 1
        if found == 20:
            break
    assert found == 20


@pytest.mark.parametrize("angle", [0.0, 90.0, 180.0, 270.0, 45.0, 200.0, 333.0])
def test_gradient_is_a_linear_blend_spanning_the_canvas(angle):
    size = 96
    c0, c1 = (180.0, 120.0, 60.0), (60.0, 200.0, 230.0)
    arr = pixels(scene_of(bg=Background("gradient", (c0, c1), angle=angle)), size)
    d = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    corners = [cx * d[0] + cy * d[1] for cx in (0, 1) for cy in (0, 1)]
    centres = (np.arange(size) + 0.5) / size
    proj = centres[None, :] * d[0] + centres[:, None] * d[1]   # [row, col]
    t = (proj - min(corners)) / (max(corners) - min(corners))
    expected = np.asarray(c0) + t[..., None] * (np.asarray(c1) - np.asarray(c0))
    assert np.abs(arr - expected).max() <= 1.01
    back, ahead = _corner_extremes(angle)
    assert np.abs(arr[back] - c0).max() <= 2 and np.abs(arr[ahead] - c1).max() <= 2


def test_noise_same_on_all_channels_with_the_scene_sigma():
    base = sample_scene(5, "train")
    scene = replace(base, background=flat((150.0, 120.0, 90.0)), noise_sigma=5.0)
    clean = pixels(replace(scene, noise_sigma=0.0))
    noisy = pixels(scene)
    diff = noisy - clean
    ok = ((clean > 30) & (clean < 225)).all(axis=2)       # away from clipping
    assert (diff[..., 0] == diff[..., 1])[ok].all() and (diff[..., 1] == diff[..., 2])[ok].all()
    assert abs(diff[ok][:, 0].std() - 5.0) < 0.4 and abs(diff[ok][:, 0].mean()) < 0.3
    objects_px = np.abs(clean - np.rint([150, 120, 90])).max(axis=2) > 0
    assert (objects_px & ok).sum() > 500                  # noise is over the objects too
    assert abs(diff[objects_px & ok][:, 0].std() - 5.0) < 0.6
    assert pixels(replace(scene, noise_sigma=0.0)).tolist() == clean.tolist()
    bright = pixels(replace(scene, background=flat((250.0, 250.0, 250.0)), noise_sigma=6.0))
    assert bright.max() == 255 and bright[:3].min() > 200  # clipped at 255, no wrap-around


def _alpha_and_colour(o: SceneObject, art: str, size: int = 128):
    """Alpha (0..1) and premultiplied colour of the composited sprite, from renders of the same
    object over black and over white."""
    black = pixels(scene_of(o, bg=flat((0.0, 0.0, 0.0)), art=art), size)
    white = pixels(scene_of(o, bg=flat((255.0, 255.0, 255.0)), art=art), size)
    return white - black, black


@pytest.mark.parametrize("art", ART_SETS)
def test_sprite_alpha_composited_scaled_and_centred(art):
    size = 128
    for k, category in enumerate(CATEGORIES[ART_SETS.index(art)::11]):
        size_name, s = ("large", 0.31) if k % 2 else ("small", 0.19)
        o = obj(category, 0.4 + 0.02 * k, 0.6 - 0.01 * k, size_name, s)
        inverse, black = _alpha_and_colour(o, art, size)
        # alpha compositing: the background's share (1 - alpha) is the same for R, G and B
        assert np.abs(inverse - inverse[..., :1]).max() <= 1
        alpha = 1 - inverse[..., 0] / 255
        rows, cols = np.nonzero(alpha > 0.5)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert abs(max(height, width) - s * size) <= 2, (category, height, width)
        cy, cx = (rows.max() + rows.min() + 1) / 2, (cols.max() + cols.min() + 1) / 2
        assert abs(cx - o.x * size) <= 2 and abs(cy - o.y * size) <= 2, category
        assert alpha.max() > 0.99                       # opaque somewhere


@pytest.mark.parametrize("art", ART_SETS)
def test_sprite_is_the_categorys_art(art):
    size = 128
    for category in ("dog", "cat", "hot dog", "car", "tree", "cup", "soccer ball", "rose"):
        o = obj(category, 0.5, 0.5, "large", 0.32)
        _, black = _alpha_and_colour(o, art, size)
        rows, cols = np.nonzero(black.sum(axis=2) > 0)
        box = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        crop = black[box[1]:box[3], box[0]:box[2]]

        def mad(cat: str) -> float:
            sp = sprite(art, cat)
            ref = Image.alpha_composite(Image.new("RGBA", sp.size, (0, 0, 0, 255)), sp)
            ref = ref.convert("RGB").resize((box[2] - box[0], box[3] - box[1]), Image.BILINEAR)
            return float(np.abs(np.asarray(ref).astype(int) - crop).mean())

        own = mad(category)
        assert own < 10, (art, category, own)
        other = min(mad(c) for c in ("pig", "bus", "apple") if c != category)
        assert own < other / 2, (art, category, own, other)


def test_mirroring_flips_left_right():
    for k, category in enumerate(("dog", "car", "pencil", "guitar", "shoe", "hot dog")):
        art = ART_SETS[k % len(ART_SETS)]
        plain = pixels(scene_of(obj(category, 0.5, 0.5, "large", 0.3), art=art,
                                bg=flat((0.0, 0.0, 0.0))))
        mirrored = pixels(scene_of(obj(category, 0.5, 0.5, "large", 0.3, mirrored=True),
                                   art=art, bg=flat((0.0, 0.0, 0.0))))
        assert np.abs(plain - mirrored).mean() > 1            # the sprites are asymmetric
        flipped = np.fliplr(plain)
        best = min(np.abs(np.roll(flipped, s, axis=1) - mirrored).mean() for s in (-1, 0, 1))
        assert best < 0.5, category


def _centroid(alpha: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(alpha.shape)
    return np.array([(alpha * (rows + 0.5)).sum(), (alpha * (cols + 0.5)).sum()]) / alpha.sum()


def test_rotation_changes_the_drawing_about_its_centre():
    size = 128
    for category in ("car", "bus", "guitar"):
        o = obj(category, 0.5, 0.5, "large", 0.3)
        inverse0, black0 = _alpha_and_colour(o, "twemoji", size)
        for angle in (-10.0, 10.0):
            inverse, black = _alpha_and_colour(replace(o, angle=angle), "twemoji", size)
            assert np.abs(black - black0).mean() > 1
            alpha, alpha0 = 1 - inverse[..., 0] / 255, 1 - inverse0[..., 0] / 255
            assert abs(alpha.sum() - alpha0.sum()) < 0.03 * alpha0.sum()   # same area
            assert np.abs(_centroid(alpha) - _centroid(alpha0)).max() < 3


def test_objects_drawn_at_their_places_and_nowhere_else(scenes):
    size, centre_hits, n = 128, 0, 0
    for scene in scenes["test-iid"][:40]:
        clean = replace(scene, noise_sigma=0.0)
        drawn = np.abs(pixels(clean, size) - pixels(replace(clean, objects=()), size)).max(2) > 0
        allowed = np.zeros_like(drawn)
        for o in scene.objects:
            half = o.size / 2 * size
            r0, r1 = int(o.y * size - half), int(math.ceil(o.y * size + half))
            c0, c1 = int(o.x * size - half), int(math.ceil(o.x * size + half))
            assert drawn[r0:r1, c0:c1].mean() > 0.2, o.category
            centre_hits += bool(drawn[int(o.y * size), int(o.x * size)])
            n += 1
            reach = half * (math.cos(math.radians(10)) + math.sin(math.radians(10))) + 2
            allowed[max(0, int(o.y * size - reach)):int(math.ceil(o.y * size + reach)),
                    max(0, int(o.x * size - reach)):int(math.ceil(o.x * size + reach))] = True
        assert not (drawn & ~allowed).any()
    assert centre_hits >= 0.85 * n


def test_art_changes_the_image_not_the_background():
    scene = replace(sample_scene(9, "train"), noise_sigma=0.0)
    images = {art: pixels(replace(scene, art=art)) for art in ART_SETS}
    for a, b in itertools.combinations(ART_SETS, 2):
        assert np.abs(images[a] - images[b]).mean() > 0.5
        assert (images[a][:3, :3] == images[b][:3, :3]).all()


# --- captions and truth (section 5) ---------------------------------------------------------

@pytest.fixture()
def scene() -> Scene:
    # small dog left of the large cat; apple above the cat; dog and apple diagonal (no relation)
    return scene_of(obj("dog", 0.15, 0.7, "small", 0.16), obj("cat", 0.7, 0.7, "large", 0.3),
                    obj("apple", 0.7, 0.25, "small", 0.18))


def test_hand_scene_is_valid(scene):
    assert placement_ok(scene.objects)
    dog, cat, apple = scene.objects
    assert (relation(dog, cat), relation(apple, cat), relation(dog, apple)) == \
        ("left of", "above", None)


@pytest.mark.parametrize("template", range(5))
@pytest.mark.parametrize("with_size", [False, True])
def test_truth_on_all_templates(scene, template, with_size):
    dog, cat, apple = scene.objects

    def cap(a, rel, b):
        return caption(a, rel, b, template, with_size)

    assert truth(scene, cap(dog, "left of", cat)) is True
    assert truth(scene, cap(cat, "right of", dog)) is True
    assert truth(scene, cap(apple, "above", cat)) is True
    assert truth(scene, cap(cat, "below", apple)) is True
    assert truth(scene, cap(cat, "left of", dog)) is False        # swap
    assert truth(scene, cap(dog, "right of", cat)) is False       # opposite
    assert truth(scene, cap(dog, "above", cat)) is False          # other relation
    assert truth(scene, cap(apple, "left of", cat)) is False
    assert truth(scene, cap(dog, "left of", apple)) is None       # no relation
    assert truth(scene, cap(apple, "below", dog)) is None
    assert parse_caption(cap(dog, "left of", cat)) == \
        ((dog.size_name if with_size else None, "dog"), "left of",
         (cat.size_name if with_size else None, "cat"))


def test_template_5_names_the_object_first(scene):
    assert truth(scene, "a cat with a dog to its left") is True
    assert truth(scene, "a cat with a dog to its left") == truth(scene, "dog left of cat")
    assert truth(scene, "a dog with a cat to its left") is False
    assert truth(scene, "a dog with a cat to its right") is True
    assert truth(scene, "a cat with an apple above it") is True
    assert truth(scene, "an apple with a cat below it") is True
    assert truth(scene, "an apple with a cat above it") is False
    assert truth(scene, "an apple with a dog to its left") is None
    assert parse_caption("a cat with a dog to its left") == \
        ((None, "dog"), "left of", (None, "cat"))
    assert caption("dog", "left of", "cat", 4) == "a cat with a dog to its left"


def test_truth_absent_noun_and_size_mismatch(scene):
    assert truth(scene, "pig left of cat") is False
    assert truth(scene, "dog left of pig") is False
    assert truth(scene, "a cat with a pig to its left") is False
    assert truth(scene, "there is a pig to the left of a cow") is False
    assert truth(scene, "large dog left of cat") is False         # the dog is small
    assert truth(scene, "small dog left of large cat") is True
    assert truth(scene, "small dog left of small cat") is False
    assert truth(scene, "the small dog is to the left of the cat") is True
    assert truth(scene, "a large cat with a large dog to its left") is False
    assert truth(scene, "small dog left of small apple") is None  # both match; no relation


def test_truth_same_object_twice_is_undefined(scene):
    assert truth(scene, "dog left of dog") is None
    assert truth(scene, "small dog above dog") is None
    assert truth(scene, "a cat with a cat to its left") is None
    assert truth(scene, "large dog left of dog") is False          # no large dog


def test_hot_dog_is_not_a_dog():
    only_hot_dog = scene_of(obj("hot dog", 0.2, 0.5), obj("cat", 0.75, 0.5))
    assert truth(only_hot_dog, "hot dog left of cat") is True
    assert truth(only_hot_dog, "dog left of cat") is False
    assert truth(only_hot_dog, "a cat with a dog to its left") is False
    assert truth(only_hot_dog, "a cat with a hot dog to its left") is True
    both = scene_of(obj("hot dog", 0.2, 0.7), obj("dog", 0.2, 0.2), obj("cat", 0.75, 0.7))
    assert placement_ok(both.objects)
    assert truth(both, "hot dog left of cat") is True
    assert truth(both, "dog left of cat") is None                 # diagonal: no relation
    assert truth(both, "dog above hot dog") is True
    assert truth(both, "hot dog below dog") is True
    assert truth(both, "hot dog above dog") is False
    assert truth(both, "the dog is below the hot dog") is False
    assert truth(both, "a hot dog with a dog above it") is True
    assert truth(both, "there is a small hot dog to the left of a small cat") is True
    assert parse_caption("small hot dog left of dog") == \
        (("small", "hot dog"), "left of", (None, "dog"))
    assert parse_caption("soccer ball above ice cream") == \
        ((None, "soccer ball"), "above", (None, "ice cream"))


def test_articles_by_the_next_word():
    assert caption("apple", "left of", "dog", 1) == "an apple to the left of a dog"
    assert caption("dog", "left of", "owl", 1) == "a dog to the left of an owl"
    assert caption("egg", "above", "ice cream", 3) == "there is an egg above an ice cream"
    assert caption("umbrella", "below", "eagle", 1) == "an umbrella below an eagle"
    assert caption("owl", "right of", "apple", 4) == "an apple with an owl to its right"
    assert caption("large apple", "left of", "small owl", 1) == \
        "a large apple to the left of a small owl"
    assert caption("apple", "left of", "dog", 2) == "the apple is to the left of the dog"
    apple = obj("apple", 0.2, 0.5, "large", 0.3)
    owl = obj("owl", 0.75, 0.5, "small", 0.2)
    assert caption(apple, "left of", owl, 1) == "an apple to the left of an owl"
    assert caption(apple, "left of", owl, 1, True) == "a large apple to the left of a small owl"
    assert caption(apple, "left of", owl, 3, True) == \
        "there is a large apple to the left of a small owl"
    s = scene_of(apple, owl)
    for text in ["an apple to the left of an owl", "a large apple to the left of a small owl",
                 "an owl with an apple to its left", "a small owl with a large apple to its left",
                 "there is an apple to the left of an owl"]:
        assert truth(s, text) is True, text
    ice = scene_of(obj("ice cream", 0.5, 0.2), obj("egg", 0.5, 0.75))
    assert truth(ice, "an ice cream above an egg") is True
    assert truth(ice, "an egg with an ice cream above it") is True


def test_truth_normalises_case_and_full_stop(scene):
    assert truth(scene, "The Dog is to the left of the CAT.") is True
    assert truth(scene, "DOG LEFT OF CAT.") is True
    assert truth(scene, "A cat with a dog to its left.") is True
    assert truth(scene, "  there is a dog   to the left of a cat ") is True


@pytest.mark.parametrize("text", [
    "", "dog", "large dog", "dog left of", "left of cat", "unicorn left of cat",
    "dog left of unicorn", "dog near cat", "dog beside cat", "red circle left of blue square",
    "large red circle left of blue square", "dogs left of cat", "hotdog left of cat",
    "dog to the left of cat", "a dog left of a cat", "the dog left of the cat",
    "a cat with a dog near it", "dog left of cat and cat", "a small large dog left of a cat",
    "medium dog left of cat"])
def test_caption_outside_the_grammar_raises(scene, text):
    with pytest.raises(ValueError):
        truth(scene, text)


def test_caption_surface_forms(scene):
    dog, cat, apple = scene.objects
    assert caption(dog, "left of", cat) == "dog left of cat"
    assert caption(dog, "left of", cat, 0, True) == "small dog left of large cat"
    assert caption(dog, "left of", cat, 1) == "a dog to the left of a cat"
    assert caption(cat, "right of", dog, 1, True) == "a large cat to the right of a small dog"
    assert caption(dog, "left of", cat, 2) == "the dog is to the left of the cat"
    assert caption(apple, "above", cat, 2, True) == "the small apple is above the large cat"
    assert caption(dog, "left of", cat, 3) == "there is a dog to the left of a cat"
    assert caption(cat, "below", apple, 3) == "there is a cat below an apple"
    assert caption(dog, "left of", cat, 4) == "a cat with a dog to its left"
    assert caption(cat, "right of", dog, 4) == "a dog with a cat to its right"
    assert caption(apple, "above", cat, 4) == "a cat with an apple above it"
    assert caption(cat, "below", apple, 4, True) == "a small apple with a large cat below it"
    for bad in [dict(template=5), dict(template=-1)]:
        with pytest.raises(ValueError):
            caption(dog, "left of", cat, **bad)
    with pytest.raises(ValueError):
        caption(dog, "near", cat)


# --- hard negatives (section 8) -------------------------------------------------------------

def test_hard_negatives_false_and_of_every_kind(scenes):
    which = Counter()
    for scene in scenes["test-comp"][:60] + scenes["train"][:60] + scenes["test-iid"][:30]:
        present = {o.category for o in scene.objects}
        for a, rel, b in related_pairs(scene):
            for template in range(5):
                with_size = (template + len(present)) % 2 == 1
                negs = hard_negatives(scene, a, rel, b, with_size=with_size, template=template)
                assert set(negs) == {"swap", "opposite", "distractor", "reversed"}
                for text in negs.values():
                    assert truth(scene, text) is False, text
                sa = a.size_name if with_size else None
                sb = b.size_name if with_size else None
                assert parse_caption(negs["swap"]) == ((sb, b.category), rel, (sa, a.category))
                assert parse_caption(negs["opposite"]) == \
                    ((sa, a.category), OPP[rel], (sb, b.category))
                assert parse_caption(negs["reversed"]) == parse_caption(negs["swap"])
                # reversed keeps the true caption's mention order (template 5 <-> template 1)
                true_text = caption(a, rel, b, template, with_size)
                assert _ref_parse(negs["swap"])[3] == template
                assert _ref_parse(negs["opposite"])[3] == template
                assert _ref_parse(negs["reversed"])[3] == (4 if template != 4 else 0)
                assert _mention_order(negs["reversed"]) == _mention_order(true_text)
                # distractor: one noun replaced by a category absent from the scene
                (dsa, dca), drel, (dsb, dcb) = parse_caption(negs["distractor"])
                assert _ref_parse(negs["distractor"])[3] == template and drel == rel
                assert (dsa, dsb) == (sa, sb)
                if dca == a.category:
                    new, kept = dcb, a.category
                    which["b"] += 1
                else:
                    assert dcb == b.category
                    new, kept = dca, b.category
                    which["a"] += 1
                assert new not in present
                if scene.split == "train":
                    assert not held_out(new, kept)
    assert which["a"] > 50 and which["b"] > 50


def test_train_distractors_never_form_held_out_pairs():
    checked = 0
    for seed in range(400):
        _, record = make_example(seed, "train", world="object-scenes")
        text = record["negatives"]["distractor"]
        (_, ca), _, (_, cb) = parse_caption(text)
        assert not held_out(ca, cb), text
        (_, ta), _, (_, tb) = parse_caption(record["caption"])
        assert not held_out(ta, tb)
        checked += 1
    assert checked == 400


# --- swapped centres and the pair test (relation-scenes.md 7.3) -------------------------------

@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("art", [None, "emojione"])
def test_pair_example(split, art):
    kw = {} if art is None else {"art": art}
    for seed in range(15):
        one, two, c, c_swapped = pair_example(seed, split, **kw)
        assert truth(one, c) is True and truth(one, c_swapped) is False
        assert truth(two, c_swapped) is True and truth(two, c) is False
        assert _ref_parse(c)[3] == 0 and _ref_parse(c_swapped)[3] == 0   # canonical form
        moved = [(p, q) for p, q in zip(one.objects, two.objects) if p != q]
        assert len(moved) == 2
        (a1, a2), (b1, b2) = moved
        assert (a2.x, a2.y, b2.x, b2.y) == (b1.x, b1.y, a1.x, a1.y)
        for p, q in moved:
            assert (p.category, p.size_name, p.size, p.angle, p.mirrored) == \
                (q.category, q.size_name, q.size, q.angle, q.mirrored)
        assert (one.background, one.noise_sigma, one.seed, one.split, one.art) == \
            (two.background, two.noise_sigma, two.seed, two.split, two.art)
        assert placement_ok(one.objects) and placement_ok(two.objects)
        if art is not None:
            assert one.art == art
        if split == "test-comp":
            (_, ca), _, (_, cb) = parse_caption(c)
            assert held_out(ca, cb)
        else:
            assert not any(held_out(p.category, q.category)
                           for p, q in itertools.combinations(one.objects, 2))
    assert pair_example(3, split, **kw) == pair_example(3, split, **kw)


def test_pair_images_differ_and_share_the_background():
    one, two, _, _ = pair_example(4, "test-iid")
    a, b = (replace(s, noise_sigma=0.0) for s in (one, two))
    assert np.abs(pixels(a) - pixels(b)).max() > 0
    same = pixels(replace(one, noise_sigma=0.0, objects=()))
    assert (pixels(replace(two, noise_sigma=0.0, objects=())) == same).all()


# --- datasets (scenes_dataset) ----------------------------------------------------------------

def test_make_example_object_scenes():
    templates = Counter()
    sized = 0
    for seed in range(80):
        for split in ("train", "test-comp"):
            scene, record = make_example(seed, split, world="object-scenes")
            assert record["world"] == "object-scenes" and record["split"] == split
            assert record["art"] == scene.art and scene.art in ART_SETS
            assert truth(scene, record["caption"]) is True
            assert set(record["negatives"]) == set(osc.WORLD.negative_kinds)
            for text in record["negatives"].values():
                assert text == "" or truth(scene, text) is False
            assert record["positives"] and all(truth(scene, p) is True
                                               for p in record["positives"])
            assert [o["category"] for o in record["objects"]] == \
                [o.category for o in scene.objects]
            assert _ref_parse(record["caption"])[3] == record["template"]
            templates[record["template"]] += 1
            sized += record["with_size"]
            if split == "test-comp":
                (_, ca), _, (_, cb) = parse_caption(record["caption"])
                assert held_out(ca, cb)
            json.dumps(record)
    assert set(templates) == {0, 1, 2, 3, 4}
    assert 0 < sized < 160
    assert make_example(5, "train", world="object-scenes")[1] == \
        make_example(5, "train", world="object-scenes")[1]


def test_object_scenes_dataset_items():
    ds = ObjectScenesDataset(4, split="test-iid", base_seed=10, size=96)
    assert len(ds) == 4
    for i in range(4):
        item = ds[i]
        assert tuple(item["image"].shape) == (3, 96, 96) and str(item["image"].dtype) == \
            "torch.uint8"
        record = ds.record(i)
        assert item["caption"] == record["caption"] and item["seed"] == 10 + i
        assert item["negatives"] == record["negatives"]
        assert record["world"] == "object-scenes"
    with pytest.raises(IndexError):
        ds[4]


def test_write_and_load_split_round_trip(tmp_path):
    path = write_split(tmp_path, "test-comp", n=3, base_seed=20, size=96, world="object-scenes")
    records = load_split(tmp_path)
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["world"] == "object-scenes" and info["n"] == 3 and info["size"] == 96
    assert path.is_file() and len(records) == 3
    for i, record in enumerate(records):
        scene, expected = make_example(20 + i, "test-comp", world="object-scenes")
        assert {k: v for k, v in record.items() if k != "image"} == expected
        with Image.open(record["image"]) as im:
            assert im.size == (96, 96)
            assert np.asarray(im.convert("RGB")).tobytes() == render(scene, 96).tobytes()


# --- evaluation (section 8) -------------------------------------------------------------------

def _figures_at(metrics: dict, value: float) -> None:
    for key in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"):
        assert metrics[key] == value, key
    for kind in ("swap", "opposite", "distractor"):
        if metrics[f"{kind}_n"]:
            assert metrics[f"{kind}_acc"] == value, kind
    if metrics["pair_n"]:
        for key in ("pair_text", "pair_image", "pair_group"):
            assert metrics[key] == value, key


@pytest.fixture(scope="module")
def eval_sets():
    return {split: build_eval_set(split, n_images=24, n_pairs=6, size=96, world="object-scenes")
            for split in ("test-iid", "test-comp")}


def test_oracle_scores_100_overall_and_per_art(eval_sets):
    for split, es in eval_sets.items():
        m = evaluate(oracle_scorer(), es)
        assert m["world"] == "object-scenes" and m["split"] == split
        assert m["rsum"] == 600.0
        assert m["swap_n"] == m["opposite_n"] == m["distractor_n"] == 24 and m["pair_n"] == 6
        _figures_at(m, 100.0)
        assert set(m["by_art"]) == {s.art for s in es.scenes} and set(m["by_art"]) <= set(ART_SETS)
        assert sum(f["swap_n"] for f in m["by_art"].values()) == 24
        for figures in m["by_art"].values():
            _figures_at(figures, 100.0)


def test_bag_scorer_retrieves_but_cannot_tell_relations(eval_sets):
    for es in eval_sets.values():
        m = evaluate(bag_scorer(), es)
        assert m["t2i_r10"] > 50 and m["rsum"] > 200            # chance R@1 is ~4 %
        assert m["swap_acc"] == 0.0 and m["opposite_acc"] == 0.0
        assert m["distractor_acc"] == 100.0                     # a noun is absent: not a tie
        assert m["pair_text"] == m["pair_group"] == 0.0


def test_eval_set_contents(eval_sets):
    for split, es in eval_sets.items():
        assert len(es.images) == 24 and len(es.pair_images) == 6
        for scene, image, text, negs in zip(es.scenes, es.images, es.captions, es.negatives):
            assert image.size == (96, 96) and image.mode == "RGB"
            assert truth(scene, text) is True and _ref_parse(text)[3] == 0
            assert set(negs) == {"swap", "opposite", "distractor"}
            assert all(truth(scene, t) is False for t in negs.values())
            if split == "test-comp":
                (_, ca), _, (_, cb) = parse_caption(text)
                assert held_out(ca, cb)
        assert (es.relevance.diagonal()).all()
        for c, c_swapped in es.pair_captions:
            if split == "test-comp":
                (_, ca), _, (_, cb) = parse_caption(c)
                assert held_out(ca, cb)


def test_eval_set_in_one_art_set():
    es = build_eval_set("test-comp", n_images=8, n_pairs=3, size=96, world="object-scenes",
                        art="emojione")
    assert es.art == "emojione"
    assert all(s.art == "emojione" for s in es.scenes)
    assert all(im.info["scene"].art == "emojione" for pair in es.pair_images for im in pair)
    m = evaluate(oracle_scorer(), es)
    assert m["art"] == "emojione" and set(m["by_art"]) == {"emojione"}
    _figures_at(m, 100.0)


@pytest.mark.parametrize("art", ["openmoji", "Noto", ""])
def test_eval_set_unknown_art_raises(art):
    with pytest.raises(ValueError):
        build_eval_set("test-iid", n_images=2, n_pairs=1, size=96, world="object-scenes", art=art)


# --- an independent reading of the spec, compared on many scenes and captions ----------------

SHORT_RELS = {("left", "of"): "left of", ("right", "of"): "right of", ("above",): "above",
              ("below",): "below"}
LONG_RELS = {("to", "the", "left", "of"): "left of", ("to", "the", "right", "of"): "right of",
             ("above",): "above", ("below",): "below"}
TAILS = {("to", "its", "left"): "left of", ("to", "its", "right"): "right of",
         ("above", "it"): "above", ("below", "it"): "below"}


def _ref_relation(a, b) -> str | None:
    dx, dy = b.x - a.x, b.y - a.y
    for name, along, across in (("left of", dx, dy), ("right of", -dx, dy),
                                ("above", dy, dx), ("below", -dy, dx)):
        if along >= 0.15 and abs(across) <= 0.5 * abs(along):
            return name
    return None


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _ref_caption(pa: str, rel: str, pb: str, template: int) -> str:
    long = {"left of": "to the left of", "right of": "to the right of"}.get(rel, rel)
    tail = {"left of": "to its left", "right of": "to its right", "above": "above it",
            "below": "below it"}[rel]
    return [f"{pa} {rel} {pb}",
            f"{_article(pa)} {pa} {long} {_article(pb)} {pb}",
            f"the {pa} is {long} the {pb}",
            f"there is {_article(pa)} {pa} {long} {_article(pb)} {pb}",
            f"{_article(pb)} {pb} with {_article(pa)} {pa} {tail}"][template]


def _ref_phrase(words: list[str]) -> tuple[str | None, str]:
    size = words[0] if words and words[0] in ("small", "large") else None
    noun = " ".join(words[1:] if size else words)
    if noun not in SPEC_NOUNS:
        raise ValueError(noun)
    return size, noun


def _strip_article(words: list[str]) -> list[str]:
    if len(words) < 2 or words[0] != _article(words[1]):
        raise ValueError(words)
    return words[1:]


def _split_at(words: list[str], forms: dict) -> tuple[list[str], str, list[str]]:
    for i in range(1, len(words)):
        for form, rel in forms.items():
            if tuple(words[i:i + len(form)]) == form:
                return words[:i], rel, words[i + len(form):]
    raise ValueError(words)


def _ref_parse(text: str):
    """(subject phrase, relation, object phrase, template index) by the spec's five templates."""
    words = text.lower().replace(".", " ").split()
    for tail, rel in TAILS.items():
        if tuple(words[-len(tail):]) == tail and "with" in words:
            k = words.index("with")
            b = _strip_article(words[:k])
            a = _strip_article(words[k + 1:len(words) - len(tail)])
            return _ref_phrase(a), rel, _ref_phrase(b), 4
    if words[:2] == ["there", "is"]:
        left, rel, right = _split_at(words[2:], LONG_RELS)
        return _ref_phrase(_strip_article(left)), rel, _ref_phrase(_strip_article(right)), 3
    if words[:1] == ["the"]:
        left, rel, right = _split_at(words[1:], LONG_RELS)
        if left[-1:] != ["is"] or right[:1] != ["the"]:
            raise ValueError(text)
        return _ref_phrase(left[:-1]), rel, _ref_phrase(right[1:]), 2
    if words[:1] in (["a"], ["an"]):
        left, rel, right = _split_at(words, LONG_RELS)
        return _ref_phrase(_strip_article(left)), rel, _ref_phrase(_strip_article(right)), 1
    left, rel, right = _split_at(words, SHORT_RELS)
    return _ref_phrase(left), rel, _ref_phrase(right), 0


def _mention_order(text: str) -> tuple[str, str]:
    (_, a), _, (_, b), template = _ref_parse(text)
    return (b, a) if template == 4 else (a, b)


def _ref_truth(scene: Scene, text: str) -> bool | None:
    (sa, na), rel, (sb, nb), _ = _ref_parse(text)
    found = [[o for o in scene.objects if o.category == noun and size in (None, o.size_name)]
             for size, noun in ((sa, na), (sb, nb))]
    if not found[0] or not found[1]:
        return False
    if len(found[0]) != 1 or len(found[1]) != 1 or found[0][0] is found[1][0]:
        return None
    held = _ref_relation(found[0][0], found[1][0])
    return None if held is None else held == rel


def _with_two_word_nouns(scene: Scene, rng: np.random.Generator) -> Scene:
    """The scene with up to two of its objects renamed: a two-word noun, and its last word
    where that is a noun too (``hot dog`` beside ``dog``)."""
    objects = list(scene.objects)
    noun = str(rng.choice(TWO_WORD))
    names = [noun, noun.split()[-1]] if noun.split()[-1] in SPEC_NOUNS else [noun]
    present = {o.category for o in objects}
    for i, name in enumerate(names[:len(objects)]):
        if name not in present:
            objects[i] = replace(objects[i], category=name)
    return replace(scene, objects=tuple(objects))


def test_truth_and_caption_agree_with_independent_reading(scenes):
    rng = np.random.default_rng(0)
    pool = scenes["test-comp"][:100] + scenes["train"][:100] + scenes["test-iid"][:100]
    outcomes, templates, checked = Counter(), Counter(), 0
    for k, scene in enumerate(pool):
        if k % 3 == 0:
            scene = _with_two_word_nouns(scene, rng)
        for _ in range(10):
            phrases = []
            for _ in range(2):
                if rng.random() < 0.75:
                    o = scene.objects[rng.integers(len(scene.objects))]
                    noun, size_name = o.category, o.size_name
                    if rng.random() < 0.15:
                        size_name = "small" if size_name == "large" else "large"
                else:  # any noun, often absent; two-word nouns and "dog" often
                    noun = str(rng.choice(TWO_WORD + ("dog",)) if rng.random() < 0.4
                               else rng.choice(SPEC_NOUNS))
                    size_name = str(rng.choice(["small", "large"]))
                phrases.append(f"{size_name} {noun}" if rng.random() < 0.4 else noun)
            rel = str(rng.choice(list(OPP)))
            template = int(rng.integers(5))
            text = caption(phrases[0], rel, phrases[1], template)
            assert text == _ref_caption(phrases[0], rel, phrases[1], template)
            if rng.random() < 0.1:
                text = text.capitalize() + "."
            expected = _ref_truth(scene, text)
            assert truth(scene, text) == expected, text
            (sa, na), prel, (sb, nb), _ = _ref_parse(text)
            assert parse_caption(text) == ((sa, na), prel, (sb, nb))
            outcomes[expected] += 1
            templates[template] += 1
            checked += 1
        for a, b in itertools.permutations(scene.objects, 2):
            assert relation(a, b) == _ref_relation(a, b)
    assert checked == 3000
    assert min(outcomes[True], outcomes[False], outcomes[None]) > 150
    assert set(templates) == {0, 1, 2, 3, 4}
