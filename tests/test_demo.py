"""The demo's gallery: each demo query gets scene pairs where it holds in one, its swap in the other."""
from vitr_qdrant.demo.run import _pair_jobs, gallery_jobs, scene_of
from vitr_qdrant.encoders.data.worlds import get_world


def test_each_pair_holds_the_query_in_one_scene_and_its_swap_in_the_other():
    world = get_world("relation-scenes")
    a, rel, b = world.related_pairs(world.sample_scene(7, "test-iid"))[0]
    query, swapped = world.caption(a, rel, b), world.caption(b, rel, a)
    jobs = _pair_jobs((world.name, query, swapped, "test-iid", 3))
    assert len(jobs) == 6 and all(j[2] == () for j in jobs[::2]) and all(j[2] for j in jobs[1::2])
    for first, twin in zip(jobs[::2], jobs[1::2]):
        assert first[:2] == twin[:2]
        truths = [(world.truth(scene_of(world.name, *j), query), world.truth(scene_of(world.name, *j), swapped))
                  for j in (first, twin)]
        assert sorted(truths) == [(False, True), (True, False)]


def test_gallery_jobs_put_the_pairs_after_the_random_scenes_whatever_the_workers():
    world = get_world("relation-scenes")
    queries = []
    for seed in (3, 4):
        a, rel, b = world.related_pairs(world.sample_scene(seed, "test-iid"))[0]
        queries.append((world.caption(a, rel, b), world.caption(b, rel, a), "test-iid"))
    one = gallery_jobs(world, 4, queries, workers=1)
    assert one == gallery_jobs(world, 4, queries, workers=2)      # two streams in two processes
    assert len(one) == 4 + 2 * 10 and all(j[2] == () for j in one[:4])
    assert one[4:14] == _pair_jobs((world.name, *queries[0], 5))
