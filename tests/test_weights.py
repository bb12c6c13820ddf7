"""Where EMMA's weights come from: the toolkit's default on synthetic data, a one-line choice
elsewhere, and ``--weights official`` fetched once and verified (against loopback servers only)."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fusion_perception.errors import ConfigError
from fusion_perception.emma.weights import (
    DEFAULT_EMMA_WEIGHTS,
    OFFICIAL_EMMA_BLOB_SHA1,
    fetch_official_emma,
    git_blob_sha1,
    resolve_emma_weights,
)

REPO = Path(__file__).resolve().parents[1]


class _Server:
    """A loopback HTTP server answering every GET with ``body``; counts the requests."""

    def __init__(self, body: bytes):
        outer = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/EMMA.pth"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}/EMMA.pth"


def _blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_git_blob_sha1_is_gits_object_id(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"hello\n")
    assert git_blob_sha1(f) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object` of "hello\n"
    if shutil.which("git"):
        out = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True)
        assert git_blob_sha1(f) == out.stdout.strip()


def test_official_download_good_file_is_cached_once(tmp_path):
    body = b"\x80\x02pretend checkpoint bytes" * 1000
    with _Server(body) as server:
        path = fetch_official_emma(cache_dir=tmp_path, url=server.url, blob_sha1=_blob_sha1(body), progress=False)
        assert path == tmp_path / "EMMA.pth" and path.read_bytes() == body
        again = fetch_official_emma(cache_dir=tmp_path, url=server.url, blob_sha1=_blob_sha1(body), progress=False)
        assert again == path and server.requests == 1  # verified from the cache, not fetched again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EMMA.pth"]


def test_official_download_corrupt_file_is_refused_and_not_cached(tmp_path):
    good = b"the real weights"
    with _Server(b"the real weightz") as server:
        with pytest.raises(ConfigError, match="refused, nothing was cached") as err:
            fetch_official_emma(cache_dir=tmp_path, url=server.url, blob_sha1=_blob_sha1(good), progress=False)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial download


def test_official_download_without_a_server_names_url_and_place(tmp_path):
    url = _closed_port_url()
    with pytest.raises(ConfigError) as err:
        fetch_official_emma(cache_dir=tmp_path, url=url, progress=False)
    msg = str(err.value)
    assert url in msg and "by hand" in msg and "EMMA.pth" in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_a_tampered_cached_file_is_refused(tmp_path):
    (tmp_path / "EMMA.pth").write_bytes(b"not the authors' file")
    with pytest.raises(ConfigError, match="is not the authors' EMMA.pth"):
        fetch_official_emma(cache_dir=tmp_path, url=_closed_port_url(), progress=False)


def test_default_weights_only_on_synthetic_data(synthetic_root, tmp_path):
    assert resolve_emma_weights(None, synthetic_root / "m3fd") == DEFAULT_EMMA_WEIGHTS
    assert resolve_emma_weights(None, None) == DEFAULT_EMMA_WEIGHTS  # None: the synthetic default
    (tmp_path / "ir").mkdir()
    with pytest.raises(ConfigError, match=r"--weights PATH .* or --weights official"):
        resolve_emma_weights(None, tmp_path)
    assert resolve_emma_weights("x/y.pth", tmp_path) == Path("x/y.pth")
    assert OFFICIAL_EMMA_BLOB_SHA1 == "46f382475767323b83f3f7f52dc2bed0ac6b7476"


def _fuse_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, str(REPO / "tools" / "fuse_dataset.py"), *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_cli_emma_on_real_data_without_weights_is_one_line(shared_data, tmp_path):
    proc = _fuse_cli("--data", str(shared_data / "roadscene"), "--method", "emma", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--weights PATH" in lines[0] and "--weights official" in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_cli_weights_official_offline_is_one_line(shared_data, tmp_path):
    url = _closed_port_url()
    proc = _fuse_cli("--data", str(shared_data / "roadscene"), "--method", "emma", "--weights", "official",
                     "--out", str(tmp_path / "o"),
                     env_extra={"FUSION_PERCEPTION_EMMA_URL": url, "FUSION_PERCEPTION_CACHE": str(tmp_path / "c")})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "by hand" in lines[0], proc.stderr


def test_default_checkpoint_loads_and_fuses(synthetic_root, tmp_path):
    """The committed checkpoint: the published U-Fuser architecture, used without --weights."""
    from fusion_perception.fusion.stage import fuse_dataset
    from fusion_perception.emma.ufuser import UFuser
    from fusion_perception.emma.checkpoint import load_official_checkpoint

    model = load_official_checkpoint(DEFAULT_EMMA_WEIGHTS, kind="ufuser")
    assert isinstance(model, UFuser)
    assert DEFAULT_EMMA_WEIGHTS.stat().st_size <= 10 * 2**20
    fused = fuse_dataset(synthetic_root / "m3fd", "emma", tmp_path / "emma", progress=False)
    assert fused.manifest["fusion_weights_sha256"] == hashlib.sha256(DEFAULT_EMMA_WEIGHTS.read_bytes()).hexdigest()
    assert len(fused.records) == 24 and all(r.image_path.is_file() for r in fused.records)
