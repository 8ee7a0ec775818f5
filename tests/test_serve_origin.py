"""`vitr serve` against pages on other origins, in a real browser (Debian's chromium via Playwright):
a page elsewhere cannot plant an image, a foreign name that resolves to 127.0.0.1 (DNS rebinding)
reads nothing, and the viewer's browser loads no image from the hosts in the payloads."""
from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from test_collection import free_port, png
from test_serve_page import CHROMIUM, FLAGS

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install chromium chromium-driver; .ci/run installs it)")
ATTACK = """<!doctype html><html><body><script>
const bytes = Uint8Array.from(atob("%(png)s"), (c) => c.charCodeAt(0));
const form = new FormData();
form.append("files", new Blob([bytes], { type: "image/png" }), "planted.png");
fetch("%(target)s/items", { method: "POST", mode: "no-cors", body: form })
  .then(() => fetch("%(target)s/info"))
  .then((r) => r.text()).then((t) => { document.title = "read " + t; }, () => { document.title = "done"; });
</script></body></html>"""


class Other:
    """Another web server on this machine: serves the attacking page and an image, and counts requests."""

    def __init__(self, page: str, image: bytes):
        self.requests: list[str] = []
        other = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):   # noqa: N802 - the http.server API
                other.requests.append(self.path)
                body, kind = (page.encode(), "text/html") if self.path == "/attack.html" else (image, "image/png")
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model, scene_files, scene_images):
    """The service (uploads on, no key) with two files and one image added from the other server's URL."""
    import uvicorn

    import vitr_qdrant as vq
    from vitr_qdrant.serve import create_app

    folder = tmp_path_factory.mktemp("origin")
    port = free_port()
    other = Other(ATTACK % {"png": base64.b64encode(png(scene_images[7])).decode(),
                            "target": f"http://127.0.0.1:{port}"}, png(scene_images[6]))
    col = vq.VitrCollection("origin", path=folder / "store", model=tiny_model,
                            settings={"url_allow": [f"127.0.0.1:{other.port}"]})
    col.add_images(scene_files[:2], progress=False)
    report = col.add_images([f"http://127.0.0.1:{other.port}/pixel.png"],
                            ids=["remote"], progress=False)
    assert report.added == 1, report.failed
    server = uvicorn.Server(uvicorn.Config(create_app(col, uploads=folder / "up"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield col, port, other, folder / "up"
    server.should_exit = True
    thread.join(10)
    other.server.shutdown()
    col.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    rules = "MAP evil.test 127.0.0.1, MAP rebind.test 127.0.0.1"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, f"--host-resolver-rules={rules}"])
        yield chromium
        chromium.close()


def test_a_page_elsewhere_cannot_plant_an_image_or_read(setup, browser):
    col, port, other, uploads = setup
    tab = browser.new_page()
    tab.goto(f"http://evil.test:{other.port}/attack.html")
    tab.wait_for_function("document.title !== ''", timeout=20_000)
    assert tab.title() == "done"   # the POST went out (no-cors), and reading /info was blocked
    assert len(col) == 3 and not uploads.exists()
    tab.close()


def test_a_rebound_name_reads_nothing(setup, browser):
    col, port, other, _ = setup
    tab = browser.new_page()
    for path in ("/info", "/items/remote", "/"):
        response = tab.goto(f"http://rebind.test:{port}{path}")
        assert response.status == 421 and "--allowed-host" in tab.content(), path
    tab.close()


def test_the_viewer_loads_no_image_from_a_payload_host(setup, browser):
    from playwright.sync_api import expect

    col, port, other, _ = setup
    fetched = len(other.requests)
    tab = browser.new_page()
    tab.goto(f"http://127.0.0.1:{port}/")
    tab.fill("#q", "red circle left of blue square")
    tab.fill("#limit", "3")
    tab.press("#q", "Enter")
    expect(tab.locator("[data-mode=vitr] .hit")).to_have_count(3)
    remote = tab.locator("[data-mode=vitr] .hit[data-id=remote]")
    expect(remote.locator(".missing")).to_contain_text("no stored image")
    expect(tab.locator("[data-mode=vitr] .hit:not([data-id=remote]) .thumb img")).to_have_count(2)
    # even an image the page did not mean to show stays within the CSP
    tab.evaluate(f"""() => {{ const img = document.createElement("img");
                             img.src = "http://127.0.0.1:{other.port}/tracked.png"; document.body.append(img); }}""")
    tab.wait_for_timeout(500)
    assert len(other.requests) == fetched, other.requests[fetched:]
    tab.close()


def test_the_api_docs_render_offline(setup, browser):
    """/docs is the package's own page: it renders the endpoints with nothing fetched from elsewhere."""
    from playwright.sync_api import expect

    col, port, other, _ = setup
    tab = browser.new_page()
    outside = []
    tab.on("request", lambda r: outside.append(r.url) if not r.url.startswith(f"http://127.0.0.1:{port}/") else None)
    tab.goto(f"http://127.0.0.1:{port}/docs")
    expect(tab.locator("#api")).to_contain_text("POST /search")
    expect(tab.locator("#api")).to_contain_text("DELETE /items/{item_id}")
    assert outside == []
    tab.close()
