"""Downloads that resume, retry, show progress and verify the publisher's checksum.

`download(url, dest, md5=...)` streams into `dest.part`. An interrupted transfer is
resumed with an HTTP Range request, connection errors are retried with a growing pause,
and only a file whose checksum matches is renamed to `dest`: a mismatch deletes it and
raises `ChecksumError`. `safe_extract` unpacks a zip or tar archive after checking that
no member would land outside the target folder.

With `FTLIB_OFFLINE=1`, or with no network, `download` raises `OfflineError`, whose
message names the offline world and the fetch command. Used by `ftlib.datasets` and by
`python -m data_scripts.fetch` (lesson 00 shows how to pre-fetch a classroom).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ..config import data_dir, is_offline, weights_dir
from ..progress import progress

__all__ = ["download", "safe_extract", "file_checksum", "verify_file",
           "DownloadError", "ChecksumError", "OfflineError", "UnsafeArchiveError", "FETCH_COMMAND"]

FETCH_COMMAND = "python -m data_scripts.fetch --all"
CHUNK = 1 << 16  # bytes read per step


class DownloadError(RuntimeError):
    """A download failed (HTTP error, connection kept failing, checksum, offline)."""


class ChecksumError(DownloadError):
    """The downloaded file does not match the publisher's checksum; it has been deleted."""


class OfflineError(DownloadError):
    """No download is possible: `FTLIB_OFFLINE=1` is set, or there is no network."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the extraction folder."""


class _Interrupted(Exception):
    """The server closed the connection before the whole file arrived (retried)."""


def offline_message(url: str, reason: str) -> str:
    """The explanation every failed download gives when it cannot reach the network."""
    return (f"Cannot download {url}: {reason}\n"
            f"The course still runs in the offline world: load_dataset(..., source='auto') uses the "
            f"procedural stand-ins, and the course-made backbone replaces ImageNet weights.\n"
            f"For real data, run `{FETCH_COMMAND}` on a machine with network and copy its two "
            f"folders to this one: the data cache ({data_dir()}, FTLIB_DATA overrides it) and "
            f"torch's hub cache ({weights_dir().parent}).")


def file_checksum(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (`"sha256"` or `"md5"`), read in 64 KiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | Path, *, sha256: str | None = None, md5: str | None = None) -> str | None:
    """None when `path` matches the given checksum, else a sentence saying what is wrong.

    `sha256` may be the full digest or a prefix of at least 8 hex digits (torchvision's
    weight file names carry one). With no checksum given, any existing file passes.
    """
    path = Path(path)
    if not path.is_file():
        return f"{path} is missing"
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            got = file_checksum(path, algorithm)
            if not got.startswith(expected.lower()):
                return f"{path.name}: {algorithm.upper()} is {got}, the publisher gives {expected}"
    return None


def _check_expected(sha256: str | None, md5: str | None) -> None:
    if sha256 is not None and (len(sha256) < 8 or len(sha256) > 64):
        raise ValueError(f"sha256 must be 8 to 64 hex digits, got {sha256!r}")
    if md5 is not None and len(md5) != 32:
        raise ValueError(f"md5 must be 32 hex digits, got {md5!r}")


def download(url: str, dest: str | Path, *, sha256: str | None = None, md5: str | None = None,
             retries: int = 3, timeout: float = 30, progress: bool = True, backoff: float = 1.0) -> Path:
    """Download `url` to `dest` and return `dest` once its checksum is verified.

    A verified `dest` is not downloaded again. Bytes go to `dest.part`; after a broken
    connection the next attempt asks for the rest with an HTTP Range request (a server that
    ignores Range sends the whole file, which replaces the part). Connection errors are
    retried `retries` times, pausing `backoff`, 2*`backoff`, 4*`backoff`... seconds.
    `timeout` is in seconds per network read. Raises `ChecksumError` (file deleted),
    `OfflineError` (FTLIB_OFFLINE=1 or no network) or `DownloadError`.
    """
    _check_expected(sha256, md5)
    dest = Path(dest)
    if dest.exists():
        if verify_file(dest, sha256=sha256, md5=md5) is None:
            return dest
        dest.unlink()  # stale or corrupt: fetch it again
    if is_offline():
        raise OfflineError(offline_message(url, "FTLIB_OFFLINE=1 is set, so nothing is downloaded."))
    created = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]  # deepest first
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _transfer_with_retries(url, part, retries=retries, timeout=timeout, show=progress, backoff=backoff)
    except BaseException:
        _remove_empty(created)  # a failed first try leaves no empty folders; a partial file stays for resume
        raise
    problem = verify_file(part, sha256=sha256, md5=md5)
    if problem:
        part.unlink()
        raise ChecksumError(f"Checksum mismatch for {url}: {problem}. The file was deleted and not used. "
                            f"Run the download again; if it keeps failing, the copy on the server has "
                            f"changed: report it to the course maintainers.")
    os.replace(part, dest)
    return dest


def _remove_empty(folders: list[Path]) -> None:
    """rmdir each folder of `folders` (deepest first) that is empty; keep the others."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _transfer_with_retries(url: str, part: Path, *, retries: int, timeout: float,
                           show: bool, backoff: float) -> None:
    """Call `_transfer` until the file is complete, at most `retries + 1` times."""
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout=timeout, show=show)
            return
        except urllib.error.HTTPError as err:
            if err.code < 500 or attempt == retries:
                raise DownloadError(f"Download of {url} failed: HTTP {err.code} {err.reason}.") from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, socket.gaierror):  # name lookup failed: no network
                raise OfflineError(offline_message(url, f"no network ({err.reason}).")) from err
            if attempt == retries:
                raise OfflineError(offline_message(url, f"{err.reason} (after {retries + 1} tries).")) from err
        except (_Interrupted, ConnectionError, TimeoutError, http.client.HTTPException) as err:
            if attempt == retries:
                raise DownloadError(f"Download of {url} kept failing after {retries + 1} tries ({err}). "
                                    f"Run it again: it resumes from {part.name}.") from err
        time.sleep(backoff * 2 ** attempt)


def _transfer(url: str, part: Path, *, timeout: float, show: bool) -> None:
    """One HTTP request: resume `part` if it has bytes, append to it, check the length."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "ftlib-course"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not have:  # 416: the range is past the end; start over
            raise
        part.unlink()
        raise _Interrupted("the partial file did not fit the server's copy; starting over") from err
    with response:
        resumed = bool(have) and response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            part.unlink()
            raise _Interrupted("the server sent another byte range than asked; starting over")
        if not resumed:
            have = 0  # a fresh start, or the server ignored Range and sends the whole file
        expected = _expected_total(response, have)
        with open(part, "ab" if resumed else "wb") as out:
            got = _copy(response, out, have, expected, desc=part.name[:-5], show=show)
    if expected is not None and got < expected:
        raise _Interrupted(f"got {got} of {expected} bytes")


def _expected_total(response: http.client.HTTPResponse, have: int) -> int | None:
    """The full file size in bytes, from Content-Length (plus what we already have), if known."""
    length = response.headers.get("Content-Length")
    return have + int(length) if length is not None else None


def _copy(response: http.client.HTTPResponse, out, have: int, expected: int | None,
          desc: str, show: bool) -> int:
    """Copy the body to `out` with a byte progress bar; return the file size reached."""
    bar = progress(total=expected, initial=have, desc=desc, unit="B", unit_scale=True,
                   unit_divisor=1024) if show else None
    try:
        while True:
            try:
                block = response.read(CHUNK)
            except http.client.IncompleteRead as err:
                out.write(err.partial)
                have += len(err.partial)
                break
            if not block:
                break
            out.write(block)
            have += len(block)
            if bar is not None:
                bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    return have


# --- archives ---------------------------------------------------------------------------------


def _inside(target: Path, relative: str) -> bool:
    """True when `target / relative`, resolved lexically, stays inside `target`."""
    path = PurePosixPath(relative.replace("\\", "/"))
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        return False
    resolved = os.path.normpath(os.path.join(str(target), *path.parts))
    return resolved == str(target) or resolved.startswith(str(target) + os.sep)


def _tar_problems(tar: tarfile.TarFile, target: Path) -> list[str]:
    problems = []
    for m in tar.getmembers():
        if not _inside(target, m.name) or ".." in PurePosixPath(m.name).parts:
            problems.append(f"{m.name!r} would be written outside the folder")
        elif m.issym() and not _inside(target, str(PurePosixPath(m.name).parent / m.linkname)):
            problems.append(f"{m.name!r} is a symlink to {m.linkname!r}, outside the folder")
        elif m.islnk() and not _inside(target, m.linkname):
            problems.append(f"{m.name!r} is a hard link to {m.linkname!r}, outside the folder")
        elif not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            problems.append(f"{m.name!r} is a device or pipe")
    return problems


def _zip_problems(zf: zipfile.ZipFile, target: Path) -> list[str]:
    return [f"{name!r} would be written outside the folder" for name in zf.namelist()
            if not _inside(target, name) or ".." in PurePosixPath(name.replace("\\", "/")).parts]


def safe_extract(archive: str | Path, target: str | Path) -> Path:
    """Extract a zip or tar archive (`.tar`, `.tar.gz`, ...) into `target` and return it.

    Every member is checked first: an absolute path, a `..` component, or a link pointing
    outside `target` raises `UnsafeArchiveError` before anything is written.
    """
    archive, target = Path(archive), Path(target).resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _refuse(archive, _zip_problems(zf, target))
            target.mkdir(parents=True, exist_ok=True)
            zf.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            _refuse(archive, _tar_problems(tar, target))
            target.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second line of defence
                tar.extractall(target, filter="data")
            else:
                tar.extractall(target)
    else:
        raise ValueError(f"{archive} is neither a zip nor a tar archive.")
    return target


def _refuse(archive: Path, problems: list[str]) -> None:
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UnsafeArchiveError(f"Refusing to extract {archive.name}: {listed}. Nothing was extracted. "
                                 f"The archive is damaged or malicious: delete it and download it again "
                                 f"from the official source.")
