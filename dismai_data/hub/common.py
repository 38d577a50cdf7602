"""The ground floor of the hub's storage: names and paths it accepts, the error every layer
raises (:class:`HubError`, answered with its status and ``X-Error-Code``), repo keys, git
object ids, and atomic (temporary file, fsync, rename) writes."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_TYPES = ("model", "dataset", "space")
HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
GITATTRIBUTES = (b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
                 b"*.arrow filter=lfs diff=lfs merge=lfs -text\n"
                 b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
                 b"*.pt filter=lfs diff=lfs merge=lfs -text\n"
                 b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
                 b"*.png filter=lfs diff=lfs merge=lfs -text\n")


class HubError(Exception):
    """An error the server turns into a status code with X-Error-Code / X-Error-Message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 extra: dict | None = None):
        super().__init__(message)
        self.extra = extra or {}
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def check_path(path: str) -> str:
    """Reject paths that could escape a repo or are not portable."""
    if not isinstance(path, str) or not path:
        raise HubError(400, "InvalidPath", "empty path")
    if "\0" in path:
        raise HubError(400, "InvalidPath", f"path {path!r} contains NUL")
    if "\\" in path:
        raise HubError(400, "InvalidPath", f"path {path!r} contains a backslash")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise HubError(400, "InvalidPath", f"path {path!r} is absolute")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise HubError(400, "InvalidPath", f"path {path!r} has an empty, '.' or '..' component")
    if parts[0] == ".git" or len(path.encode()) > 1000:
        raise HubError(400, "InvalidPath", f"path {path!r} is not allowed")
    return path


def check_ref_name(name: str) -> str:
    if (not name or len(name) > 200 or name.startswith("/") or name.endswith("/") or ".." in name or "//" in name
            or any(c in name for c in "\0\\ ~^:?*[") or any(ord(c) < 32 for c in name) or HEX40.match(name)):
        raise HubError(400, "InvalidReference", f"invalid branch or tag name {name!r}")
    return name


def fsync_dir(path: Path) -> None:
    """fsync a folder (makes a rename or a new file in it durable), or a file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, tmp_dir: Path, durable: bool = True) -> None:
    """write to a temporary file, fsync, rename over ``path``, fsync the folder (without the
    fsyncs when ``durable`` is False: the caller fsyncs later, see :func:`fsync_file`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=path.name[:40] + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    """fsync a file written with ``durable=False`` and its folder (cheap once written back)."""
    fsync_dir(path)
    fsync_dir(path.parent)


@dataclass(frozen=True)
class RepoKey:
    type: str
    ns: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.ns}/{self.name}"

    @property
    def url_prefix(self) -> str:
        return "" if self.type == "model" else f"{self.type}s/"


def decode_b64(content: str, path: str) -> bytes:
    try:
        return base64.b64decode(content, validate=True)
    except Exception as exc:
        raise HubError(400, "MalformedNdjson", f"content of {path!r} is not valid base64") from exc
