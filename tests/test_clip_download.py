"""_download / load by name against a local HTTP server on 127.0.0.1."""
import hashlib
import http.server
import os
import threading

import pytest
import torch

from clip import clip
from clip.shapes import random_state_dict


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {}  # path -> bytes
    cut_after = {}  # path -> bytes to send before closing (announcing the full length)

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: self.cut_after.get(self.path, len(body))])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("srv") / "tiny.pt"
    torch.save(random_state_dict("tiny-ViT", seed=3), path)
    payload = path.read_bytes()
    sha = hashlib.sha256(payload).hexdigest()
    _Handler.files = {f"/{sha}/tiny.pt": payload, f"/{'0' * 64}/wrong.pt": payload,
                      f"/{sha}/cut.pt": payload}
    _Handler.cut_after = {f"/{sha}/cut.pt": len(payload) // 2}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", sha, payload
    httpd.shutdown()


def _leftovers(root):
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def test_right_hash_downloads_and_loads(server, tmp_path, monkeypatch):
    base, sha, payload = server
    url = f"{base}/{sha}/tiny.pt"
    monkeypatch.setitem(clip._MODELS, "tiny-test", url)
    model, _ = clip.load("tiny-test", device="cpu", download_root=str(tmp_path))
    assert _leftovers(tmp_path) == ["tiny.pt"]
    assert (tmp_path / "tiny.pt").read_bytes() == payload
    assert model.visual.input_resolution == 32
    # second call uses the cache (server not needed: same path back)
    assert clip._download(url, str(tmp_path)) == str(tmp_path / "tiny.pt")


def test_wrong_hash_leaves_nothing_in_cache(server, tmp_path):
    base, _, _ = server
    with pytest.raises(RuntimeError, match="SHA256"):
        clip._download(f"{base}/{'0' * 64}/wrong.pt", str(tmp_path))
    assert _leftovers(tmp_path) == []


def test_cut_transfer_leaves_no_partial_file(server, tmp_path):
    base, sha, _ = server
    with pytest.raises(Exception):
        clip._download(f"{base}/{sha}/cut.pt", str(tmp_path))
    assert _leftovers(tmp_path) == []


def test_cached_file_with_wrong_hash_is_fetched_again(server, tmp_path):
    base, sha, payload = server
    (tmp_path / "tiny.pt").write_bytes(b"stale or damaged")
    with pytest.warns(UserWarning, match="does not match"):
        path = clip._download(f"{base}/{sha}/tiny.pt", str(tmp_path))
    assert open(path, "rb").read() == payload
    assert _leftovers(tmp_path) == ["tiny.pt"]


def test_no_network_names_the_file_and_where_to_put_it(tmp_path):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    sha = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"
    with pytest.raises(RuntimeError) as info:
        clip._download(f"http://127.0.0.1:{port}/{sha}/ViT-B-16.pt", str(tmp_path))
    message = str(info.value)
    assert "ViT-B-16.pt" in message and str(tmp_path / "ViT-B-16.pt") in message and sha in message
    assert _leftovers(tmp_path) == []
