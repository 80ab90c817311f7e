"""ftlib.course.download against a tiny HTTP server run by the test on 127.0.0.1 (no outside network).

The server can honour or ignore Range requests, cut the connection after N bytes, and
answer 503 a given number of times, so resume and retry are tested for real.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import tarfile
import threading
import urllib.error
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pathlib import Path, PurePath

import pytest

from ftlib.course import download as dl

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


class FakeServer:
    """Serves `files` ({"/name": bytes}); records every request as (path, Range header or None)."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = dict(files), []
        self.honour_range, self.cut_after, self.cuts_left, self.fail_left = True, None, 0, 0
        self.heads: list[str] = []  # HEAD requests (the fetch command's size lookups)
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

            def do_HEAD(self):
                server.heads.append(self.path)
                if self.path not in server.files:
                    return self.send_error(404, "no such file")
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.files[self.path])))
                self.end_headers()

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


# --- read-only caches and bad destinations ------------------------------------------------------


def make_read_only(monkeypatch, *folders) -> None:
    """Make `folders` read-only for this process: chmod 555 on every folder in them, and, since
    root ignores mode bits, `os.access` answers "not writable" there too."""
    roots = [Path(f).resolve() for f in folders]
    for root in roots:
        for p in [root, *root.rglob("*")]:
            if p.is_dir():
                p.chmod(0o555)
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        resolved = Path(os.path.realpath(path))
        if mode & os.W_OK and any(resolved == r or r in resolved.parents for r in roots):
            return False
        return real_access(path, mode, *args, **kwargs)
    monkeypatch.setattr(os, "access", access)


def snapshot(folder) -> dict[str, tuple[int, int]]:
    """Every entry under `folder` with its size and modification time: any write changes it."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in Path(folder).rglob("*")}


def test_missing_file_in_a_read_only_cache_is_a_clear_error(server, tmp_path, monkeypatch):
    cache = tmp_path / "shared"
    cache.mkdir()
    make_read_only(monkeypatch, cache)
    with pytest.raises(dl.CacheNotWritableError, match="FTLIB_DATA=") as caught:
        dl.download(server.url("/file.bin"), cache / "sub" / "file.bin", sha256=sha256(PAYLOAD))
    assert "read-only" in str(caught.value) and server.requests == [] and snapshot(cache) == {}
    assert isinstance(caught.value, dl.DownloadError)  # `source="auto"` callers fall back on it


def test_verified_file_in_a_read_only_cache_is_read_without_writing(server, tmp_path, monkeypatch):
    cache = tmp_path / "shared"
    cache.mkdir()
    (cache / "file.bin").write_bytes(PAYLOAD)
    make_read_only(monkeypatch, cache)
    before = snapshot(cache)
    assert dl.download(server.url("/file.bin"), cache / "file.bin", sha256=sha256(PAYLOAD)) == cache / "file.bin"
    assert snapshot(cache) == before and server.requests == []


def test_damaged_file_in_a_read_only_cache_is_explained(server, tmp_path, monkeypatch):
    cache = tmp_path / "shared"
    cache.mkdir()
    (cache / "file.bin").write_bytes(PAYLOAD[:1000])  # an interrupted copy
    make_read_only(monkeypatch, cache)
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied")))  # what a non-root user gets
    with pytest.raises(dl.CacheNotWritableError, match="damaged"):
        dl.download(server.url("/file.bin"), cache / "file.bin", sha256=sha256(PAYLOAD))
    assert (cache / "file.bin").read_bytes() == PAYLOAD[:1000]


def test_a_folder_where_the_file_belongs_is_explained(server, tmp_path):
    (tmp_path / "file.bin").mkdir()
    with pytest.raises(dl.DownloadError, match="is a folder"):
        dl.download(server.url("/file.bin"), tmp_path / "file.bin", sha256=sha256(PAYLOAD))
    assert server.requests == []


def test_a_server_that_hangs_or_refuses_gives_a_course_error(tmp_path):
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(1)  # accepts the connection, never answers
        url = f"http://127.0.0.1:{hanging.getsockname()[1]}/x.bin"
        with pytest.raises(dl.DownloadError, match="x.bin"):
            dl.download(url, tmp_path / "x.bin", timeout=0.3, retries=1, backoff=0, progress=False)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound but not listening: connection refused
        with pytest.raises(dl.OfflineError, match="offline world"):
            dl.download(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin", retries=0, progress=False)
    assert not (tmp_path / "x.bin").exists()


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
    tar = _tar(tmp_path / "ok.tar.gz", [_member("d", tarfile.DIRTYPE), _member("d/e.txt"), _member("f.txt")])
    server.files["/ok.tar.gz"] = tar.read_bytes()
    fetched = dl.download(server.url("/ok.tar.gz"), tmp_path / "fetched.tar.gz", sha256=sha256(tar.read_bytes()))
    out = dl.safe_extract(fetched, tmp_path / "tar_out")
    assert (out / "d" / "e.txt").read_bytes() == b"hello" and (out / "f.txt").read_bytes() == b"hello"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left


def test_safe_extract_refuses_even_an_inside_symlink(tmp_path):
    archive = _tar(tmp_path / "link.tar.gz", [_member("d/e.txt"), _member("d/link", tarfile.SYMTYPE, "e.txt")])
    with pytest.raises(dl.UnsafeArchiveError, match="links are not allowed"):
        dl.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


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


# Python's own tar filter (3.11.4+) is switched off below, so ftlib's checks alone must hold.

@pytest.fixture
def no_tar_filter(monkeypatch):
    """Make safe_extract take the path older Pythons take (no `filter=` argument)."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)


def _written(tmp_path) -> set[str]:
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}


@pytest.mark.parametrize("members", [
    [_member("a", tarfile.SYMTYPE, "."), _member("a/b", tarfile.SYMTYPE, ".."),
     _member("a/b/c", tarfile.SYMTYPE, ".."), _member("a/b/c/evil.txt")],
    [_member("hard", tarfile.LNKTYPE, "existing.txt"), _member("hard")],
    [_member("fine.txt"), _member("../evil.txt")],
    [_member("fine.txt"), _member(str(PurePath("/tmp/ftlib_evil_abs.txt")))],
    [_member("fine.txt"), _member("sub/../../evil.txt")],
    [_member("fine.txt"), _member("dev", tarfile.CHRTYPE)],
], ids=["symlink-chain", "hardlink-to-existing", "dotdot", "absolute", "nested-dotdot", "device"])
def test_refused_tar_writes_nothing_without_the_tar_filter(tmp_path, no_tar_filter, members):
    archive = _tar(tmp_path / "bad.tar.gz", members)
    target = tmp_path / "out"
    target.mkdir()
    (target / "existing.txt").write_text("keep me")
    before = _written(tmp_path)
    with pytest.raises(dl.UnsafeArchiveError, match="Nothing was extracted"):
        dl.safe_extract(archive, target)
    assert _written(tmp_path) == before and (target / "existing.txt").read_text() == "keep me"
    assert not (tmp_path / "evil.txt").exists() and not os.path.exists("/tmp/ftlib_evil_abs.txt")


def test_path_through_an_existing_symlink_is_refused(tmp_path, no_tar_filter):
    target, outside = tmp_path / "out", tmp_path / "outside"
    target.mkdir(), outside.mkdir()
    (target / "escape").symlink_to(outside)
    archive = _tar(tmp_path / "bad.tar", [_member("escape/evil.txt")])
    with pytest.raises(dl.UnsafeArchiveError, match="outside"):
        dl.safe_extract(archive, target)
    assert list(outside.iterdir()) == []


def test_good_tar_extracts_without_the_tar_filter_and_merges(tmp_path, no_tar_filter):
    target = tmp_path / "out"
    (target / "d").mkdir(parents=True)
    (target / "d" / "old.txt").write_text("old")
    dl.safe_extract(_tar(tmp_path / "ok.tar", [_member("d/new.txt")]), target)
    assert (target / "d" / "old.txt").read_text() == "old" and (target / "d" / "new.txt").read_bytes() == b"hello"


def test_zip_symlink_is_refused(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(dl.UnsafeArchiveError, match="symlink"):
        dl.safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_truncated_archive_is_explained_and_writes_nothing(tmp_path, kind):
    big = os.urandom(200_000)
    path = tmp_path / f"cut.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("a.bin", b"x" * 10)
            zf.writestr("b.bin", big)
        data = path.read_bytes()
        path.write_bytes(data[:30] + data[30:].replace(big[1000:1100], b"\0" * 100))  # bytes damaged
    else:
        with tarfile.open(path, "w") as tar:
            for name, data in (("a.bin", b"x" * 10), ("b.bin", big)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        path.write_bytes(path.read_bytes()[:150_000])
    with pytest.raises(dl.UnsafeArchiveError, match="damaged or truncated"):
        dl.safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_missing_empty_and_folder_archives_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dl.safe_extract(tmp_path / "nope.zip", tmp_path / "out")
    (tmp_path / "empty.zip").write_bytes(b"")
    with pytest.raises(ValueError, match="it is empty"):
        dl.safe_extract(tmp_path / "empty.zip", tmp_path / "out")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        dl.safe_extract(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_verify_file_explains_a_folder_and_an_unreadable_file(tmp_path, monkeypatch):
    assert "is a folder" in dl.verify_file(tmp_path, sha256="0" * 64)
    (tmp_path / "f.bin").write_bytes(b"abc")

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(dl, "file_checksum", unreadable)
    assert "cannot be read (Permission denied)" in dl.verify_file(tmp_path / "f.bin", sha256="0" * 64)


def test_extracting_onto_a_file_is_explained(tmp_path):
    archive = _zip(tmp_path / "ok.zip", {"a.txt": b"hello"})
    (tmp_path / "out").write_text("a file")
    with pytest.raises(NotADirectoryError, match="it is a file, not a folder"):
        dl.safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out").read_text() == "a file"


def test_remote_size_reads_content_length_and_never_raises(server, online):
    assert dl.remote_size(server.url("/data.bin")) == len(PAYLOAD)
    assert server.heads == ["/data.bin"] and server.requests == []   # a HEAD request, no download
    assert dl.remote_size(server.url("/missing.bin")) is None         # 404
    assert dl.remote_size("http://127.0.0.1:9/nothing-listens-here", timeout=2) is None


def test_remote_size_asks_nothing_offline(server, monkeypatch):
    monkeypatch.setenv("FTLIB_OFFLINE", "1")
    assert dl.remote_size(server.url("/data.bin")) is None and server.heads == []
