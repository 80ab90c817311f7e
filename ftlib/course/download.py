"""Downloads that resume, retry, show progress and verify the publisher's checksum.

`download(url, dest, md5=...)` streams into `dest.part`. An interrupted transfer is
resumed with an HTTP Range request, connection errors are retried with a growing pause,
and only a file whose checksum matches is renamed to `dest`: a mismatch deletes it and
raises `ChecksumError`. `safe_extract` unpacks a zip or tar archive after checking every
member (no path outside the target folder, no links, no devices); a refused archive writes nothing.

With `FTLIB_OFFLINE=1`, or with no network, `download` raises `OfflineError`, whose
message names the offline world and the fetch command. Used by `ftlib.datasets` and by
`python -m data_scripts.fetch` (lesson 00 shows how to pre-fetch a classroom).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..config import data_dir, is_offline, weights_dir
from ..progress import progress

__all__ = ["download", "remote_size", "safe_extract", "file_checksum", "verify_file",
           "writable_problem", "DownloadError", "ChecksumError", "OfflineError", "CacheNotWritableError",
           "UnsafeArchiveError", "FETCH_COMMAND"]

FETCH_COMMAND = "python -m data_scripts.fetch"  # the lessons' set
CHUNK = 1 << 16  # bytes read per step


class DownloadError(RuntimeError):
    """A download failed (HTTP error, connection kept failing, checksum, offline)."""


class ChecksumError(DownloadError):
    """The downloaded file does not match the publisher's checksum; it has been deleted."""


class OfflineError(DownloadError):
    """No download is possible: `FTLIB_OFFLINE=1` is set, or there is no network."""


class CacheNotWritableError(DownloadError):
    """A file must be saved into a cache folder that this user cannot write (a shared, read-only copy)."""


def writable_problem(folder: str | Path) -> str | None:
    """None when files can be created in `folder` (or in the folder that would hold it), else why not.

    Nothing is written to find out. The doctor and every cache write use it.
    """
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return f"{existing or folder} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is read-only for this user"
    return None


def not_writable_error(path: str | Path, reason: str) -> CacheNotWritableError:
    """The error for a needed write into a read-only cache: what, why, and the fix."""
    return CacheNotWritableError(
        f"Cannot save {path}: {reason}. Files already in the cache are still read, but this one is "
        f"missing. Point the cache at a folder you can write, e.g. `FTLIB_DATA=~/ftlib-data` (data) "
        f"or `TORCH_HOME=~/torch-cache` (weights), or ask whoever set up the shared copy to add it.")


class UnsafeArchiveError(ValueError):
    """An archive is refused: a member would leave the folder, is a link or device, or the file is damaged."""


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
    if path.is_dir():
        return f"{path} is a folder, not a file"
    if not path.is_file():
        return f"{path} is missing"
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            try:
                got = file_checksum(path, algorithm)
            except OSError as err:
                return f"{path} cannot be read ({err.strerror or err})"
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
    if dest.is_dir():
        raise DownloadError(f"{dest} is a folder, but the file {dest.name} belongs there. "
                            f"Move or delete that folder and run the download again.")
    if dest.exists():
        problem = verify_file(dest, sha256=sha256, md5=md5)
        if problem is None:
            return dest
        try:
            dest.unlink()  # stale or corrupt: fetch it again
        except PermissionError as err:
            raise not_writable_error(dest, f"the copy there is damaged ({problem}) and cannot be "
                                     f"replaced: {err.strerror}") from err
    if is_offline():
        raise OfflineError(offline_message(url, "FTLIB_OFFLINE=1 is set, so nothing is downloaded."))
    problem = writable_problem(dest.parent)
    if problem:
        raise not_writable_error(dest, problem)
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


def remote_size(url: str, timeout: float = 10) -> int | None:
    """The size in bytes of the file at `url`, from a HEAD request's Content-Length; None when
    the server does not say, or cannot be reached (nothing is raised: it is only for display).
    Used by `python -m data_scripts.fetch` to print each download's size before it starts."""
    if is_offline():
        return None
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "ftlib-course"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            return int(length) if length is not None and length.isdigit() else None
    except (OSError, ValueError, http.client.HTTPException):  # URLError and HTTPError are OSErrors
        return None


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


def _path_problem(target: Path, name: str) -> str | None:
    """Why member `name` may not be written under `target` (None when it may).

    The path must be relative, free of `..`, and stay inside `target` once resolved on
    disk (an existing symlink in `target` does not count as inside).
    """
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (path.parts and ":" in path.parts[0]) or ".." in path.parts:
        return f"{name!r} would be written outside the folder"
    resolved = os.path.realpath(os.path.join(str(target), *path.parts))
    if resolved != str(target) and not resolved.startswith(str(target) + os.sep):
        return f"{name!r} would be written outside the folder (through a link already there)"
    return None


def _tar_problems(tar: tarfile.TarFile, target: Path) -> list[str]:
    """Every reason to refuse the tar: unsafe paths, links of any kind, devices and pipes."""
    problems = []
    for m in tar.getmembers():
        problem = _path_problem(target, m.name)
        if problem is None and (m.issym() or m.islnk()):
            base = PurePosixPath(m.name).parent if m.issym() else PurePosixPath()
            where = ", outside the folder" if _path_problem(target, str(base / m.linkname)) else ""
            kind = "symlink" if m.issym() else "hard link"
            problem = f"{m.name!r} is a {kind} to {m.linkname!r}{where} (links are not allowed)"
        elif problem is None and not (m.isfile() or m.isdir()):
            problem = f"{m.name!r} is a device or pipe"
        if problem:
            problems.append(problem)
    return problems


def _zip_problems(zf: zipfile.ZipFile, target: Path) -> list[str]:
    """Every reason to refuse the zip: unsafe paths and stored symlinks."""
    problems = []
    for info in zf.infolist():
        problem = _path_problem(target, info.filename)
        if problem is None and stat.S_ISLNK(info.external_attr >> 16):
            problem = f"{info.filename!r} is a symlink (links are not allowed)"
        if problem:
            problems.append(problem)
    return problems


def _open_archive(archive: Path):
    """(opened zip or tar, its problem list function), or a clear error for anything else."""
    if archive.is_dir():
        raise IsADirectoryError(f"{archive} is a folder, not an archive. Give the .zip or .tar file.")
    if not archive.is_file():
        raise FileNotFoundError(f"{archive} does not exist. Download it again (`{FETCH_COMMAND}`).")
    if zipfile.is_zipfile(archive):
        return zipfile.ZipFile(archive), _zip_problems
    if tarfile.is_tarfile(archive):
        return tarfile.open(archive), _tar_problems
    size = "it is empty" if archive.stat().st_size == 0 else "it is damaged or another kind of file"
    raise ValueError(f"{archive} is neither a zip nor a tar archive ({size}). Delete it and download it again.")


def safe_extract(archive: str | Path, target: str | Path) -> Path:
    """Extract a zip or tar archive (`.tar`, `.tar.gz`, ...) into `target` and return it.

    Every member is checked before anything is written: an absolute path, a `..`
    component, a path leaving `target`, any symlink or hard link, or a device raises
    `UnsafeArchiveError`. The archive is unpacked into a hidden folder next to `target` and
    moved in only when complete, so a refused or truncated archive writes nothing.
    """
    archive, target = Path(archive), Path(os.path.realpath(target))
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"Cannot extract {archive.name} into {target}: it is a file, not a folder. "
                                 f"Move or delete it, or give another folder.")
    opened, find_problems = _open_archive(archive)
    staging = None
    try:
        with opened:
            _refuse(archive, find_problems(opened, target))
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.extracting-", dir=target.parent))
            if isinstance(opened, tarfile.TarFile) and hasattr(tarfile, "data_filter"):
                opened.extractall(staging, filter="data")  # Python >= 3.11.4: a second line of defence
            else:
                opened.extractall(staging)
        _move_into(staging, target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise UnsafeArchiveError(f"{archive.name} is damaged or truncated ({type(err).__name__}: {err}). "
                                 f"Nothing was extracted. Delete it and download it again.") from err
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _move_into(source: Path, target: Path) -> None:
    """Move everything in `source` into `target`, merging with folders already there."""
    if not target.exists():
        os.replace(source, target)
        return
    for item in source.iterdir():
        there = target / item.name
        if item.is_dir() and there.is_dir():
            _move_into(item, there)
        else:
            os.replace(item, there)


def _refuse(archive: Path, problems: list[str]) -> None:
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UnsafeArchiveError(f"Refusing to extract {archive.name}: {listed}. Nothing was extracted. "
                                 f"The archive is damaged or malicious: delete it and download it again "
                                 f"from the official source.")
