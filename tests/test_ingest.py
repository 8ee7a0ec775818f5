"""Input expansion, decoding failures and URL fetching (a local HTTP server, no model)."""
from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from vitr_qdrant.sources.fetch import FetchCfg, FetchError, fetch_url
from vitr_qdrant.sources.inputs import LoadCfg, as_inputs, iter_sources, load_source, load_sources
from vitr_qdrant.settings import Settings, default_data_dir

FAST = FetchCfg(timeout=2.0, attempts=3, backoff=0.0, max_bytes=10_000, allow=("127.0.0.1",))
LOAD = LoadCfg(fetch=FAST)


def png_bytes(size=(12, 8), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def bomb_png(side: int = 100_000) -> bytes:
    """A PNG whose header claims side x side pixels (no pixel data follows)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server():
    """A local HTTP server: /ok.png, /flaky.png (503 twice, then the image), /busy.png (429 with
    Retry-After once), /missing (404), /big (over the cap)."""
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits[self.path] = hits.get(self.path, 0) + 1
            body, status = png_bytes(), 200
            if self.path == "/flaky.png" and hits[self.path] <= 2:
                status = 503
            elif self.path == "/busy.png" and hits[self.path] == 1:
                status = 429
            elif self.path == "/missing":
                status = 404
            elif self.path == "/big":
                body = b"x" * 20_000
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if status == 429:
                self.send_header("Retry-After", "0.2")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def test_fetch_ok_retry_and_failures(server):
    base, hits = server
    assert Image.open(io.BytesIO(fetch_url(base + "/ok.png", FAST))).size == (12, 8)
    assert fetch_url(base + "/flaky.png", FAST) and hits["/flaky.png"] == 3   # 503, 503, 200
    started = time.perf_counter()
    assert fetch_url(base + "/busy.png", FAST) and hits["/busy.png"] == 2     # 429 with Retry-After
    assert time.perf_counter() - started >= 0.2
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_url(base + "/missing", FAST)
    assert hits["/missing"] == 1                                             # not retried
    with pytest.raises(FetchError, match="cap"):
        fetch_url(base + "/big", FAST)
    with pytest.raises(FetchError, match="scheme"):
        fetch_url("file:///etc/passwd", FAST)


def test_urls_through_the_loader(server):
    base, _ = server
    ok, missing = load_sources(list(iter_sources([base + "/ok.png", base + "/missing"])), LOAD, workers=2)
    assert ok.ok and ok.uri == base + "/ok.png" and ok.image.size == (12, 8) and len(ok.sha256) == 64
    assert not missing.ok and "HTTP 404" in missing.error


def test_unreachable_url_gives_up_after_bounded_attempts():
    url = f"http://127.0.0.1:{free_port()}/x.png"
    with pytest.raises(FetchError, match="gave up after 2 attempt"):
        fetch_url(url, FetchCfg(timeout=1.0, attempts=2, backoff=0.0, allow=("127.0.0.1",)))


def test_expand_directories_and_inputs(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("b.png", "a.JPG", "sub/c.webp", ".hidden/d.png", "notes.txt", ".e.png"):
        (tmp_path / name).write_bytes(b"x")
    keys = [s.key for s in iter_sources([tmp_path, "http://h/x.png"])]
    assert [k.rsplit("/", 2)[-1] for k in keys[:3]] == ["a.JPG", "b.png", "c.webp"]
    assert keys[3] == "http://h/x.png" and len(keys) == 4
    arr = np.zeros((2, 4, 4, 3), np.uint8)
    assert len(as_inputs(arr)) == 2 and len(as_inputs(arr[0])) == 1 and len(as_inputs(b"xx")) == 1


def test_load_never_raises_and_says_why(tmp_path):
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(png_bytes((64, 64))[:60])
    text = tmp_path / "text.png"
    text.write_text("not an image")
    cases = [
        (str(tmp_path / "missing.png"), "no such file"),
        (str(truncated), "readable"),
        (str(text), "not a readable image"),
        (bomb_png(), "bomb"),
        (object(), "unsupported image type"),
        (np.zeros((4, 4), np.uint8), "HxWx3"),
        ("ftp://example.com/x.png", "scheme"),
    ]
    items = load_sources(list(iter_sources([c[0] for c in cases])), LOAD, workers=2)
    for item, (_, expected) in zip(items, cases):
        assert not item.ok and expected in item.error, (item.source.key, item.error)
        assert "0x" not in item.error


def test_good_inputs_decode_with_stable_hashes(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes())
    arr = np.full((5, 7, 3), 9, np.uint8)
    for item in (path, str(path), path.read_bytes(), Image.new("RGB", (3, 3)), arr):
        a, b = (load_source(next(iter_sources([item]))) for _ in range(2))
        assert a.ok and a.sha256 == b.sha256 and len(a.sha256) == 64
    assert load_source(next(iter_sources([path]))).uri == str(path.resolve())


def test_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("VITR_QDRANT_HOME", str(tmp_path))
    assert Settings().resolved_data_dir() == tmp_path
    assert Settings(data_dir="~/x").resolved_data_dir().name == "x"
    monkeypatch.delenv("VITR_QDRANT_HOME")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_data_dir().parts[-3:] == (".local", "share", "vitr-qdrant")
    with pytest.raises(ValueError):
        Settings(batch_sise=3)
    assert Settings.create({"batch_size": 4}, workers=2, url_retries=None).batch_size == 4
