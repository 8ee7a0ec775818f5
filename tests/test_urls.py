"""The URL policy and the deadline against a local HTTP server on 127.0.0.1 that misbehaves: slow,
dripping, failing then recovering, 429 with Retry-After: 3600, streaming forever, redirecting to
file:// and to an internal port; credentials in URLs are never stored or shown."""
from __future__ import annotations

import base64
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

import vitr_qdrant as vq
from vitr_qdrant.sources.fetch import FetchCfg, fetch_url
from vitr_qdrant.sources.url_policy import Allowed, URLPolicy, redact_text, redact_url


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


class Server:
    """A threaded HTTP server on 127.0.0.1 recording the paths (and Authorization headers) it got."""

    def __init__(self, handler_for):
        self.hits: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits.append((self.path, self.headers.get("Authorization")))
                handler_for(self, outer)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self, path: str) -> int:
        return sum(p == path for p, _ in self.hits)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def send(h, status=200, body=b"", **headers):
    h.send_response(status)
    for k, v in {"Content-Length": str(len(body)), **headers}.items():
        h.send_header(k.replace("_", "-"), v)
    h.end_headers()
    h.wfile.write(body)


@pytest.fixture()
def internal():
    """Another local service, the one a redirect must not reach."""
    s = Server(lambda h, srv: send(h, 200, b"internal secret"))
    yield s
    s.close()


@pytest.fixture()
def server(internal):
    image = png_bytes()

    def handle(h, srv):
        path = h.path
        if path == "/ok.png":
            send(h, 200, image)
        elif path == "/slow.png":
            time.sleep(3)
            send(h, 200, image)
        elif path == "/drip.png":
            h.send_response(200)
            h.send_header("Content-Length", "1000")
            h.end_headers()
            for _ in range(1000):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(0.1)
        elif path == "/flaky.png":
            send(h, 503 if srv.count(path) <= 2 else 200, image)
        elif path == "/busy.png":
            send(h, 429, b"", Retry_After="3600")
        elif path == "/forever":
            h.send_response(200)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            while True:
                h.wfile.write(b"1000\r\n" + b"x" * 4096 + b"\r\n")
        elif path == "/to-file":
            send(h, 302, Location="file:///etc/passwd")
        elif path == "/to-internal":
            send(h, 302, Location=f"{internal.url}/secret")
        elif path == "/to-ok":
            send(h, 301, Location="/ok.png")
        else:
            send(h, 404)

    s = Server(handle)
    yield s
    s.close()


def cfg(server, **kw) -> FetchCfg:
    base = dict(timeout=0.5, attempts=3, backoff=0.0, deadline=2.0, allow=(f"127.0.0.1:{server.port}",))
    return FetchCfg(**{**base, **kw})


def test_flaky_recovers_and_redirects_on_the_same_host_are_followed(server):
    assert fetch_url(server.url + "/flaky.png", cfg(server)) == png_bytes() and server.count("/flaky.png") == 3
    assert fetch_url(server.url + "/to-ok", cfg(server)) == png_bytes()


@pytest.mark.parametrize("path, reason", [("/slow.png", "ReadTimeout"), ("/drip.png", "url_deadline of 2 s"),
                                          ("/busy.png", "HTTP 429")])
def test_slow_dripping_and_busy_servers_are_cut_off_at_the_deadline(server, path, reason):
    started = time.monotonic()
    with pytest.raises(vq.FetchError, match=reason):
        fetch_url(server.url + path, cfg(server))
    assert time.monotonic() - started < 2.0 + 0.6      # the deadline, plus at most one read timeout
    if path == "/busy.png":
        assert server.count(path) == 1                 # Retry-After: 3600 is past the deadline: no retry


def test_a_stream_without_end_is_cut_by_the_size_cap_and_the_deadline(server):
    with pytest.raises(vq.FetchError, match="over the 100000-byte cap"):
        fetch_url(server.url + "/forever", cfg(server, max_bytes=100_000))
    started = time.monotonic()
    with pytest.raises(vq.FetchError, match="url_deadline"):
        fetch_url(server.url + "/forever", cfg(server, deadline=1.0, max_bytes=2**40))
    assert time.monotonic() - started < 1.6


def test_redirects_to_file_and_to_an_internal_port_are_refused(server, internal):
    with pytest.raises(vq.URLPolicyError, match="only http and https"):
        fetch_url(server.url + "/to-file", cfg(server))
    with pytest.raises(vq.URLPolicyError, match=f"127.0.0.1:{internal.port}"):
        fetch_url(server.url + "/to-internal", cfg(server))
    assert internal.hits == []                          # never asked
    assert fetch_url(internal.url + "/x", cfg(server, allow=("127.0.0.1",))) == b"internal secret"


@pytest.mark.parametrize("url, kind", [("http://127.0.0.1:{port}/ok.png", "loopback"),
                                       ("http://localhost:{port}/ok.png", "loopback"),
                                       ("http://169.254.169.254/latest/meta-data/", "link-local"),
                                       ("http://10.1.2.3/x.png", "private"), ("http://[::1]:{port}/x", "loopback"),
                                       ("http://224.0.0.1/x", "multicast"), ("http://0.0.0.0:{port}/x", "private"),
                                       ("http://[::ffff:127.0.0.1]:{port}/x", "loopback")])
def test_the_default_policy_fetches_public_addresses_only(server, url, kind):
    url = url.format(port=server.port)
    with pytest.raises(vq.URLPolicyError, match=f"a {kind} address.*url_allow") as err:
        fetch_url(url, FetchCfg(timeout=0.5))
    assert "vitr index --url-allow" in str(err.value)
    assert server.hits == []
    with pytest.raises(vq.URLPolicyError, match="scheme 'ftp'"):
        fetch_url("ftp://example.com/x.png")


def test_allow_entries():
    def admits(entry, host, address, port=80):
        import ipaddress
        return Allowed.parse(entry).admits(host, ipaddress.ip_address(address), port)

    assert admits("10.0.0.0/8", "nas", "10.9.8.7") and not admits("10.0.0.0/8", "nas", "192.168.1.1")
    assert admits("127.0.0.1:8080", "127.0.0.1", "127.0.0.1", 8080)
    assert not admits("127.0.0.1:8080", "127.0.0.1", "127.0.0.1", 8081)
    assert admits("*.corp.example", "img.corp.example", "10.0.0.1")
    assert not admits("*.corp.example", "corp.x", "10.0.0.1")
    assert admits("[::1]:81", "::1", "::1", 81) and admits("*", "x", "fd00::1", 1)
    assert URLPolicy.create(["images.lan"]).allow[0].host == "images.lan"
    with pytest.raises(ValueError, match="url_allow"):
        vq.Settings(url_allow=["10.0.0.0/99"])
    assert vq.Settings(url_allow="images.lan").url_allow == ("images.lan",)


def test_credentials_are_never_stored_or_shown(tmp_path, tiny_model, server):
    secret = f"http://alice:s3cret@127.0.0.1:{server.port}"
    assert redact_url(secret + "/ok.png") == server.url + "/ok.png"
    assert redact_text(f"cannot reach {secret}/x and https://u:p@h/y") == f"cannot reach {server.url}/x and https://h/y"
    settings = {"url_allow": [f"127.0.0.1:{server.port}"], "url_retries": 1, "url_timeout": 1.0}
    with vq.VitrCollection("creds", path=tmp_path, model=tiny_model, settings=settings) as col:
        report = col.add_images([secret + "/ok.png", secret + "/missing.png"], progress=False)
        assert report.added == 1 and "s3cret" not in repr(report) and "alice" not in repr(report)
        assert report.failed == [(server.url + "/missing.png", f"HTTP 404 from {server.url}/missing.png")]
        (record,) = col.get(report.ids)
        assert record.uri == server.url + "/ok.png"
        assert col.search_by_image(secret + "/ok.png", limit=1)[0].id == report.ids[0]
    sent = dict(server.hits)["/ok.png"]
    assert sent == "Basic " + base64.b64encode(b"alice:s3cret").decode()   # still used to fetch


def test_search_by_image_obeys_the_same_policy(tmp_path, tiny_model, server):
    with vq.VitrCollection("q", path=tmp_path, model=tiny_model) as col:
        with pytest.raises(vq.URLPolicyError, match="query image.*loopback"):
            col.search_by_image(server.url + "/ok.png")
        with pytest.raises(vq.URLPolicyError, match="query image.*http and https"):
            col.search_by_image("file:///etc/passwd")
    assert server.hits == []


def test_the_cli_prints_no_credentials(tmp_path, tiny_model, server, capsys):
    from vitr_qdrant.cli import main
    from vitr_qdrant.encoders import save_model

    model_dir = str(save_model(tiny_model, tmp_path / "model"))
    secret = f"http://alice:s3cret@127.0.0.1:{server.port}"
    args = ["-c", "u", "--path", str(tmp_path / "store"), "--model", model_dir, "--no-progress", "--url-retries", "1"]
    assert main(["index", secret + "/ok.png", secret + "/missing.png", *args,
                 "--url-allow", f"127.0.0.1:{server.port}"]) == 1
    assert main(["index", secret + "/ok.png", *args]) == 1           # refused by the default policy
    assert main(["info", "--url", "http://alice:s3cret@127.0.0.1:1"]) == 1
    out, err = capsys.readouterr()
    assert "added 1" in out and f"{server.url}/missing.png: HTTP 404" in err and "url_allow" in err
    assert "s3cret" not in out + err and "alice" not in out + err
