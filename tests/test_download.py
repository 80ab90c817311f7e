"""ftlib.course.download against a tiny HTTP server run by the test on 127.0.0.1 (no outside network).

The server can honour or ignore Range requests, cut the connection after N bytes, and
answer 503 a given number of times, so resume and retry are tested for real.
"""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import urllib.error
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ftlib.course import download as dl

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


class FakeServer:
    """Serves `files` ({"/name": bytes}); records every request as (path, Range header or None)."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = dict(files), []
        self.honour_range, self.cut_after, self.cuts_left, self.fail_left = True, None, 0, 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{name}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if server.fail_left:
                    server.fail_left -= 1
                    return self.send_error(503, "try again")
                if self.path not in server.files:
                    return self.send_error(404, "no such file")
                body, start = server.files[self.path], 0
                rng = self.headers.get("Range")
                if rng and server.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if server.cuts_left:
                    server.cuts_left -= 1
                    self.wfile.write(body[start:start + server.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body[start:])

        return Handler

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeServer({"/data.bin": PAYLOAD})
    yield s
    s.close()


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """The download tests need FTLIB_OFFLINE unset (CI sets it); the server is local anyway."""
    monkeypatch.delenv("FTLIB_OFFLINE", raising=False)
    monkeypatch.setenv("FTLIB_QUIET", "1")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verifies_and_renames(server, tmp_path):
    dest = tmp_path / "sub" / "data.bin"
    got = dl.download(server.url("/data.bin"), dest, sha256=sha256(PAYLOAD),
                      md5=hashlib.md5(PAYLOAD).hexdigest())
    assert got == dest and dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "data.bin.part").exists()


def test_verified_file_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "data.bin"
    dl.download(server.url("/data.bin"), dest, sha256=sha256(PAYLOAD))
    dl.download(server.url("/data.bin"), dest, sha256=sha256(PAYLOAD))
    assert len(server.requests) == 1


def test_sha256_prefix_as_in_torchvision_file_names(server, tmp_path):
    dl.download(server.url("/data.bin"), tmp_path / "ok.bin", sha256=sha256(PAYLOAD)[:8])
    with pytest.raises(dl.ChecksumError):
        dl.download(server.url("/data.bin"), tmp_path / "bad.bin", sha256="0123abcd")


def test_checksum_mismatch_removes_the_file(server, tmp_path):
    dest = tmp_path / "data.bin"
    wrong = hashlib.md5(b"something else").hexdigest()
    with pytest.raises(dl.ChecksumError, match="MD5") as info:
        dl.download(server.url("/data.bin"), dest, md5=wrong)
    assert wrong in str(info.value) and hashlib.md5(PAYLOAD).hexdigest() in str(info.value)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()


def test_corrupt_existing_file_is_replaced(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"garbage")
    dl.download(server.url("/data.bin"), dest, sha256=sha256(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    dest, cut = tmp_path / "data.bin", 30_000
    server.cut_after, server.cuts_left = cut, 1
    with pytest.raises(dl.DownloadError, match="resumes"):
        dl.download(server.url("/data.bin"), dest, sha256=sha256(PAYLOAD), retries=0)
    part = tmp_path / "data.bin.part"
    assert part.read_bytes() == PAYLOAD[:cut] and not dest.exists()
    dl.download(server.url("/data.bin"), dest, sha256=sha256(PAYLOAD), retries=0)
    assert server.requests[-1] == ("/data.bin", f"bytes={cut}-")
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_retry_resumes_within_one_call(server, tmp_path):
    dest = tmp_path / "data.bin"
    server.cut_after, server.cuts_left = 10_000, 2  # two broken connections, then a good one
    dl.download(server.url("/data.bin"), dest, sha256=sha256(PAYLOAD), retries=2, backoff=0)
    assert [r for _, r in server.requests] == [None, "bytes=10000-", "bytes=20000-"]
    assert dest.read_bytes() == PAYLOAD


def test_server_that_ignores_range_gives_a_full_download(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(b"x" * 5000)  # junk from an earlier attempt
    server.honour_range = False
    dl.download(server.url("/data.bin"), dest, sha256=sha256(PAYLOAD), retries=0)
    assert server.requests == [("/data.bin", "bytes=5000-")]
    assert dest.read_bytes() == PAYLOAD


def test_server_errors_are_retried_then_reported(server, tmp_path):
    server.fail_left = 2
    dl.download(server.url("/data.bin"), tmp_path / "a.bin", sha256=sha256(PAYLOAD), retries=2, backoff=0)
    assert len(server.requests) == 3
    server.fail_left = 5
    with pytest.raises(dl.DownloadError, match="503"):
        dl.download(server.url("/data.bin"), tmp_path / "b.bin", retries=1, backoff=0)


def test_missing_file_is_not_retried(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="404"):
        dl.download(server.url("/nope.bin"), tmp_path / "nope.bin", retries=3, backoff=0)
    assert len(server.requests) == 1


def _no_network(*args, **kwargs):
    raise AssertionError("the network was touched")


def test_offline_flag_refuses_without_touching_the_network(monkeypatch, tmp_path):
    monkeypatch.setenv("FTLIB_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    with pytest.raises(dl.OfflineError) as info:
        dl.download("http://127.0.0.1:9/data.bin", tmp_path / "data.bin", md5="0" * 32)
    message = str(info.value)
    assert "offline world" in message and "python -m data_scripts.fetch" in message
    assert not (tmp_path / "data.bin").exists()


def test_no_network_names_the_offline_world(monkeypatch, tmp_path):
    def no_dns(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", no_dns)
    with pytest.raises(dl.OfflineError, match="offline world") as info:
        dl.download("http://example.invalid/data.bin", tmp_path / "data.bin", backoff=0)
    assert "data_scripts.fetch" in str(info.value)


def test_a_failed_first_download_leaves_no_empty_folders(monkeypatch, tmp_path):
    def no_dns(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", no_dns)
    with pytest.raises(dl.OfflineError):
        dl.download("http://example.invalid/x.zip", tmp_path / "eurosat" / "sub" / "x.zip", backoff=0)
    assert list(tmp_path.iterdir()) == []


# --- safe_extract ------------------------------------------------------------------------------


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path, members: list[tarfile.TarInfo]):
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = b"hello" if info.isfile() else None
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name: str, kind=tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_safe_extract_zip_and_tar(server, tmp_path):
    archive = _zip(tmp_path / "ok.zip", {"a/b.txt": b"hello", "c.txt": b"hi"})
    out = dl.safe_extract(archive, tmp_path / "zip_out")
    assert (out / "a" / "b.txt").read_bytes() == b"hello" and (out / "c.txt").read_bytes() == b"hi"
    tar = _tar(tmp_path / "ok.tar.gz", [_member("d/e.txt"), _member("d/link", tarfile.SYMTYPE, "e.txt")])
    server.files["/ok.tar.gz"] = tar.read_bytes()
    fetched = dl.download(server.url("/ok.tar.gz"), tmp_path / "fetched.tar.gz", sha256=sha256(tar.read_bytes()))
    out = dl.safe_extract(fetched, tmp_path / "tar_out")
    assert (out / "d" / "e.txt").read_bytes() == b"hello" and (out / "d" / "link").read_bytes() == b"hello"


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/tmp/ftlib_evil.txt"])
def test_safe_extract_refuses_zip_traversal(tmp_path, name):
    archive = _zip(tmp_path / "bad.zip", {"fine.txt": b"ok", name: b"evil"})
    target = tmp_path / "out"
    with pytest.raises(dl.UnsafeArchiveError, match="outside"):
        dl.safe_extract(archive, target)
    assert not target.exists() and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("member", [
    _member("../evil.txt"),
    _member("/tmp/ftlib_evil.txt"),
    _member("link", tarfile.SYMTYPE, "/etc/passwd"),
    _member("d/link", tarfile.SYMTYPE, "../../outside"),
    _member("hard", tarfile.LNKTYPE, "../outside"),
], ids=["dotdot", "absolute", "symlink-absolute", "symlink-up", "hardlink-up"])
def test_safe_extract_refuses_tar_traversal(tmp_path, member):
    archive = _tar(tmp_path / "bad.tar.gz", [_member("fine.txt"), member])
    target = tmp_path / "out"
    with pytest.raises(dl.UnsafeArchiveError, match="outside"):
        dl.safe_extract(archive, target)
    assert not target.exists()


def test_safe_extract_rejects_other_files(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an archive")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        dl.safe_extract(path, tmp_path / "out")
