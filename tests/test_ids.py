"""Ids mean what they say: another image under an id replaces it, an id twice in one call fails the
later ones, a str is one id, and deleting (or getting) by an id touches only the item it names."""
from __future__ import annotations

import hashlib
import uuid

import pytest

import vitr_qdrant as vq


@pytest.fixture()
def col(tmp_path, tiny_model):
    with vq.VitrCollection("ids", path=tmp_path / "store", model=tiny_model) as c:
        yield c


def sha(col, item_id):
    (record,) = col.get(item_id)
    return record.payload["sha256"]


def test_another_image_under_an_id_replaces_it(col, scene_images):
    first = col.add_images(scene_images[0], ids=7, metadata={"album": "old"}, progress=False)
    assert (first.added, first.replaced, first.ids) == (1, 0, [7])
    same = col.add_images(scene_images[0], ids=7, progress=False)          # the same image, no metadata
    assert (same.added, same.replaced, same.skipped_items) == (0, 0, [("<PIL.Image 64x64 RGB>", "already stored")])
    assert col.get(7)[0].payload["album"] == "old"                          # what was set is kept
    before = sha(col, 7)
    other = col.add_images(scene_images[1], ids=7, progress=False)         # another image, no metadata
    assert (other.added, other.replaced, other.skipped, other.ids) == (0, 1, 0, [7])
    assert other.replaced_items == [("<PIL.Image 64x64 RGB>", "replaced what was stored under id 7")]
    assert sha(col, 7) != before and "album" not in col.get(7)[0].payload   # the new image, as given
    assert len(col) == 1


def test_an_id_twice_in_one_call_fails_the_later_ones(col, scene_images, tmp_path):
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        scene_images[i].save(paths[-1])
    report = col.add_images(paths, ids=["a", "b", "a", "a"], progress=False)
    assert report.added == 2 and report.ids == ["a", "b"] and len(col) == 2
    assert [item for item, _ in report.failed] == [str(paths[2]), str(paths[3])]
    assert all(f"id 'a' was given to an earlier item of this call ({paths[0]})" in r for _, r in report.failed)
    assert report.failed_inputs == [2, 3]
    assert sha(col, "a") == hashlib.sha256(paths[0].read_bytes()).hexdigest()   # the first one is kept
    texts = col.add_texts(["red circle", "blue square"], ids=[1, 1])
    assert texts.added == 1 and len(texts.failed) == 1 and "id 1 was given" in texts.failed[0][1]


def test_a_str_is_one_id_and_a_dict_is_one_bad_item(col, scene_images):
    assert col.add_images(scene_images[0], ids="abc", progress=False).ids == ["abc"]
    assert [r.id for r in col.get("abc")] == ["abc"] and col.get(["a", "b", "c"]) == []
    with pytest.raises(vq.InputError, match="1 entries for 3 items"):
        col.add_images(scene_images[:3], ids="abc", progress=False)
    with pytest.raises(vq.InputError, match="one per item"):
        col.add_images(scene_images[:2], metadata="album", progress=False)
    report = col.add_images({"a.png": 1, "b.png": 2}, progress=False)     # not two paths: one item
    assert report.added == 0 and report.failed == [("<dict>", report.failed[0][1])]
    assert "unsupported image type dict" in report.failed[0][1]


def test_uuid_ids_are_their_strings(col, scene_images):
    u = uuid.uuid4()
    report = col.add_images(scene_images[0], ids=[u], progress=False)
    assert report.added == 1 and report.ids == [str(u)]
    assert [r.id for r in col.get(u)] == [str(u)] == [r.id for r in col.get(str(u))]
    assert col.add_images(scene_images[0], ids=str(u), progress=False).skipped == 1   # the same id
    assert col.search("red circle", limit=1)[0].id == str(u)
    col.delete(u)
    assert len(col) == 0


def test_delete_by_id_deletes_only_that_item(col, scene_images):
    """A user's str id that happens to be another item's point UUID: delete(it) takes only the
    user's item; the other one is named by that UUID once no item of the user's has it."""
    (auto,) = col.add_images(scene_images[0], progress=False).ids     # no id given: its point UUID
    col.add_images(scene_images[1], ids=[auto], progress=False)       # the user's own id, the same string
    col.add_images(scene_images[2], ids=[5], progress=False)
    assert len(col) == 3 and [r.id for r in col.get(auto)] == [auto]
    mine = col.get(auto)[0].payload["sha256"]
    col.delete(auto)
    assert len(col) == 2 and col.get(auto)[0].payload["sha256"] != mine   # only the user's item went
    col.delete([auto, "no-such-id", 99])
    assert len(col) == 1 and [r.id for r in col.get([5, auto])] == [5]
    col.delete("5")                                                     # the str "5" is not the int 5
    assert len(col) == 1
    with pytest.raises(vq.InputError):
        col.delete(-1)
