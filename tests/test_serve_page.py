"""The search page in a real headless browser: Debian's chromium driven by Playwright for Python.

Type a query and see the hits, hover a word and see its box where the grounding says, swap the
relation and see the order change, send a bad filter and see the message. Uses the bundled
``vitr-scenes-s`` on rendered Relation Scenes, so the swap really changes the ranking.
"""
from __future__ import annotations

import shutil
import threading
import time

import httpx
import pytest
from test_collection import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install chromium chromium-driver; .ci/run installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
N_SCENES, LIMIT = 30, 6


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The service on a gallery of rendered scenes, listening on a free port; yields (url, query, swapped)."""
    import uvicorn

    import vitr_qdrant as vq
    from vitr_qdrant.datasets.relation_scenes import caption, related_pairs, render, sample_scene
    from vitr_qdrant.serve import create_app

    folder = tmp_path_factory.mktemp("scenes")
    scenes = [sample_scene(2_000_000 + k, "test-iid") for k in range(N_SCENES)]
    for k, scene in enumerate(scenes):
        render(scene, 128).save(folder / f"{k:03d}.png")
    a, rel, b = next(p for s in scenes for p in related_pairs(s))
    col = vq.VitrCollection("scenes", path=folder / "store", model=vq.load_model("vitr-scenes-s", device="cpu"))
    col.add_images(sorted(folder.glob("*.png")), progress=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(col), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the service did not start"
    yield f"http://127.0.0.1:{port}", caption(a, rel, b), caption(b, rel, a)
    server.should_exit = True
    thread.join(10)
    col.close()


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.goto(served[0] + "/")
        yield tab
        browser.close()
        assert errors == [], errors


def search(page, text: str, filter_text: str = "") -> None:
    page.fill("#q", text)
    page.fill("#filter", filter_text)
    page.fill("#limit", str(LIMIT))
    page.press("#q", "Enter")


def vitr_ids(page) -> list[str]:
    return page.eval_on_selector_all("[data-mode=vitr] .hit", "cards => cards.map(c => c.dataset.id)")


def api(url: str, text: str) -> dict:
    return httpx.post(f"{url}/search", json={"text": text, "limit": LIMIT, "filter": None, "mode": "vitr"}).json()


def wait_for_change(page, before: list[str], timeout: float = 15.0) -> list[str]:
    """The VITR column's ids once they differ from ``before`` (the page replaces them when a search returns)."""
    deadline = time.monotonic() + timeout
    while (ids := vitr_ids(page)) == before and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    return ids


def test_query_hover_swap_and_errors(served, page):
    from playwright.sync_api import expect   # waits through the page's own script, so the CSP holds

    url, query, swapped = served
    expect(page.locator("#about")).to_contain_text(f"{N_SCENES} images")

    search(page, query)
    expect(page.locator("[data-mode=vitr] .hit")).to_have_count(LIMIT)
    expect(page.locator("[data-mode=global] .hit")).to_have_count(LIMIT)   # the CLIP baseline side by side
    want = api(url, query)
    assert vitr_ids(page) == [str(h["id"]) for h in want["hits"]]
    # the calibrated line: before the first hit the model gives a probability below one half
    below = next((i for i, h in enumerate(want["hits"]) if h["probability"] < 0.5), -1)
    line_at = page.eval_on_selector("[data-mode=vitr] .hits", "ol => [...ol.children].findIndex("
                                    "c => c.classList.contains('threshold'))")
    assert all(h["probability"] is not None for h in want["hits"]) and line_at == below

    top, grounding = page.locator("[data-mode=vitr] .hit").first, want["hits"][0]["grounding"][0]
    img = top.locator(".thumb img")
    img.wait_for()
    page.mouse.move(0, 0)
    box = top.locator(f".box[data-word='{grounding['word']}']")
    expect(box).to_be_hidden()
    top.locator(f".grounding .word[data-word='{grounding['word']}']").hover()
    expect(box).to_be_visible()
    shown, frame = box.bounding_box(), img.bounding_box()
    payload = want["hits"][0]["payload"]
    x0, y0, x1, y1 = grounding["box"]
    sx, sy = frame["width"] / payload["width"], frame["height"] / payload["height"]
    assert shown["x"] == pytest.approx(frame["x"] + x0 * sx, abs=1.5)
    assert shown["y"] == pytest.approx(frame["y"] + y0 * sy, abs=1.5)
    assert shown["width"] == pytest.approx((x1 - x0) * sx, abs=1.5)
    assert shown["height"] == pytest.approx((y1 - y0) * sy, abs=1.5)

    before = vitr_ids(page)
    search(page, swapped)
    after = wait_for_change(page, before)
    assert after != before and after == [str(h["id"]) for h in api(url, swapped)["hits"]]

    search(page, query, '{"seed": {"between": 1}}')
    expect(page.locator("#error")).to_contain_text("a range takes keys")
    assert page.inner_text("#error").startswith("400: ")
    search(page, query, "{oops")
    expect(page.locator("#error")).to_contain_text("the filter is not JSON")

    search(page, "zebra left of the square")
    expect(page.locator("#notice")).to_contain_text("zebra")
    expect(page.locator("#error")).to_be_hidden()
