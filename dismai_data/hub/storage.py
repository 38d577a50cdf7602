"""Versioned, content-addressed storage of the hub (layout and guarantees: STORAGE.md).

Everything is a file under one root folder::

    blobs/sha256/ab/cd/<sha256>      file contents, named by their sha256, verified on write
    xorbs/ab/<xet hash>              Xet xorbs as uploaded (kept: later uploads reference them)
    xorbs/ab/<xet hash>.idx          their chunk index (offsets, sizes, chunk hashes)
    repos/<type>/<ns>/<name>/
        repo.json                    {private, created, owner}
        refs.json                    {"branches": {name: sha}, "tags": {name: {commit, message}}}
        commits/<sha>.json           immutable commits: parents, author, date, title, message, tree
    tmp/                             partial writes; never read, cleaned at start
    auth/tokens.json, auth/secret    see auth.py

A write goes: blobs (tmp file, fsync, rename), then the commit object (same), then
refs.json (same, then fsync of the folder). A crash at any point leaves refs.json
pointing at the previous complete commit; orphans are harmless.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import mmap
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from dismai_data.hub import xet

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


def _fsync_dir(path: Path) -> None:
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
        _fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    """fsync a file written with ``durable=False`` and its folder (cheap once written back)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


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


class BlobWriter:
    """Stream bytes into a temporary file while hashing; ``commit`` verifies and publishes."""

    def __init__(self, storage: "Storage", limit: int | None = None):
        self.storage = storage
        self.limit = limit
        fd, self.tmp = tempfile.mkstemp(dir=storage.tmp_dir, prefix="blob.")
        self.f = os.fdopen(fd, "wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise HubError(413, "PayloadTooLarge", f"upload is larger than the limit of {self.limit} bytes")
        self.sha.update(data)
        self.f.write(data)

    def commit(self, expected_sha: str | None = None, expected_size: int | None = None) -> tuple[str, int]:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        digest = self.sha.hexdigest()
        if expected_sha is not None and digest != expected_sha:
            self.abort()
            raise HubError(400, "HashMismatch", f"content has sha256 {digest}, expected {expected_sha}")
        if expected_size is not None and self.size != expected_size:
            self.abort()
            raise HubError(400, "SizeMismatch", f"content has {self.size} bytes, expected {expected_size}")
        dest = self.storage.blob_path(digest)
        if dest.exists():
            self.abort()
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, dest)
            _fsync_dir(dest.parent)
        return digest, self.size

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


class Storage:
    def __init__(self, root: str | os.PathLike, max_upload_bytes: int | None = None):
        self.root = Path(root)
        self.max_upload_bytes = max_upload_bytes
        self.tmp_dir = self.root / "tmp"
        for sub in ("blobs/sha256", "xorbs", "repos", "tmp", "auth"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._locks: dict[RepoKey, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._commit_cache: OrderedDict[tuple, dict] = OrderedDict()
        self._cache_guard = threading.Lock()
        self.instance_id = self._instance_id()

    def _instance_id(self) -> str:
        """A random id made once per storage folder. It goes into the Xet CAS URL: hf_xet
        keys its local dedupe cache by that URL and later uploads reference xorbs it
        remembers, so a new storage behind the same host:port must get a new URL or the
        client would reference xorbs this storage never received."""
        path = self.root / "instance_id"
        if not path.is_file():
            tmp = self.tmp_dir / f"instance_id.{os.getpid()}.{threading.get_ident()}"
            tmp.write_text(secrets.token_hex(8) + "\n")
            try:
                os.link(tmp, path)  # atomic and never overwrites a concurrent winner
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip()

    def clean_tmp(self) -> None:
        """Remove partial writes left by a crash (only call with no writer running)."""
        for p in self.tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()

    # ---- blobs ------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256[2:4] / sha256

    def has_blob(self, sha256: str) -> bool:
        return bool(HEX64.match(sha256 or "")) and self.blob_path(sha256).is_file()

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self, self.max_upload_bytes)

    def put_bytes(self, data: bytes) -> str:
        w = self.blob_writer()
        try:
            w.write(data)
        except BaseException:
            w.abort()
            raise
        return w.commit()[0]

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    # ---- xorbs ------------------------------------------------------------------------
    def xorb_path(self, h: str) -> Path:
        return self.root / "xorbs" / h[:2] / h

    def has_xorb(self, h: str) -> bool:
        return bool(HEX64.match(h)) and (self.xorb_path(h).with_suffix(".idx")).is_file()

    def put_xorb(self, h: str, data: bytes) -> bool:
        if not HEX64.match(h):
            raise HubError(400, "InvalidHash", f"xorb hash {h!r} is not 64 lowercase hex characters")
        if self.has_xorb(h):
            return False
        try:
            chunks = xet.index_xorb(memoryview(data), h)
        except xet.XetFormatError as exc:
            raise HubError(400, exc.code, str(exc)) from exc
        # Not fsynced here (it would serialise the upload on the disk): every xorb a shard
        # references is fsynced before that shard is acknowledged, hence before any commit uses it.
        # A xorb lost to a power cut before its shard is caught there (XorbNotFound, or the
        # sha256 check of the rebuilt file).
        path = self.xorb_path(h)
        atomic_write(path, data, self.tmp_dir, durable=False)
        atomic_write(path.with_suffix(".idx"), xet.encode_index(chunks), self.tmp_dir, durable=False)
        return True

    def xorb_index(self, h: str) -> list[xet.ChunkInfo]:
        return xet.decode_index(self.xorb_path(h).with_suffix(".idx").read_bytes())

    def ingest_shard(self, data: bytes, owned=lambda sha: False) -> list[tuple[str, int]]:
        """Rebuild every file of an uploaded shard from stored xorbs, check its xet file hash,
        term verification hashes and sha256, and store it as an ordinary blob. A file whose
        sha256 is already stored *and* ``owned(sha)`` (the uploader proved possession before)
        is not rebuilt again. Files are rebuilt in parallel threads (hashing and I/O release
        the GIL)."""
        try:
            shard = xet.parse_shard(data)
        except xet.XetFormatError as exc:
            raise HubError(400, exc.code, str(exc)) from exc
        referenced = set()
        for entry in shard.files:  # cheap checks first, so a bad shard fails before any work
            for term in entry.terms:
                if not self.has_xorb(term.xorb):
                    raise HubError(400, "XorbNotFound", f"shard references xorb {term.xorb}, never uploaded")
                referenced.add(term.xorb)
        for h in referenced:  # make the xorbs durable before acknowledging the shard
            fsync_file(self.xorb_path(h))
            fsync_file(self.xorb_path(h).with_suffix(".idx"))
        todo = [e for e in shard.files if not (e.sha256 and self.has_blob(e.sha256) and owned(e.sha256))]
        done = {e.sha256: (e.sha256, self.blob_path(e.sha256).stat().st_size) for e in shard.files if e not in todo}
        if len(todo) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(4, len(todo))) as ex:
                results = list(ex.map(self._rebuild_file, todo))
        else:
            results = [self._rebuild_file(e) for e in todo]
        rebuilt = dict(zip([id(e) for e in todo], results))
        return [rebuilt[id(e)] if id(e) in rebuilt else done[e.sha256] for e in shard.files]

    def _rebuild_file(self, entry: "xet.FileEntry") -> tuple[str, int]:
        w = self.blob_writer()
        try:
            nodes = []
            open_xorbs: dict[str, tuple] = {}
            for term in entry.terms:
                if term.xorb not in open_xorbs:
                    open_xorbs[term.xorb] = (self.xorb_index(term.xorb), self.xorb_path(term.xorb))
                index, path = open_xorbs[term.xorb]
                if term.end > len(index):
                    raise HubError(400, "ShardVerificationFailed",
                                   f"chunk range [{term.start}, {term.end}) past the {len(index)} chunks "
                                   f"of xorb {term.xorb}")
                chunks = index[term.start:term.end]
                if sum(c.size for c in chunks) != term.size:
                    raise HubError(400, "ShardVerificationFailed",
                                   f"term of xorb {term.xorb} says {term.size} bytes, chunks hold "
                                   f"{sum(c.size for c in chunks)}")
                if term.verification is not None and \
                        xet.verification_hash([c.hash for c in chunks]) != term.verification:
                    raise HubError(400, "ShardVerificationFailed",
                                   f"verification hash of a term of xorb {term.xorb} does not match")
                with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    view = memoryview(mm)
                    payload = None
                    try:
                        if chunks[-1].offset + chunks[-1].compressed_size > len(mm):
                            raise HubError(400, "ShardVerificationFailed", f"xorb {term.xorb} is truncated")
                        for c in chunks:
                            payload = view[c.offset:c.offset + c.compressed_size]
                            w.write(payload if c.compression == 0 else
                                    xet.decompress_chunk(c.compression, payload, c.size))
                            nodes.append((c.hash, c.size))
                    finally:
                        del payload
                        view.release()
            got = xet.hash_to_hex(xet.file_hash(nodes))
            if got != entry.file_hash:
                raise HubError(400, "ShardVerificationFailed",
                               f"file rebuilt from the xorbs has xet hash {got}, the shard says {entry.file_hash}")
            return w.commit(expected_sha=entry.sha256)
        except HubError as exc:
            w.abort()
            if exc.code == "HashMismatch":
                exc.code = "ShardVerificationFailed"
            raise
        except BaseException:
            w.abort()
            raise

    # ---- repos ------------------------------------------------------------------------
    def repo_dir(self, key: RepoKey) -> Path:
        if key.type not in REPO_TYPES or not all(NAME_RE.match(p) and ".." not in p for p in (key.ns, key.name)):
            raise HubError(404, "RepoNotFound", f"Repository Not Found for {key.type} {key.ns}/{key.name}")
        return self.root / "repos" / key.type / key.ns / key.name

    def lock(self, key: RepoKey):
        with self._locks_guard:
            lk = self._locks.setdefault(key, threading.RLock())

        @contextlib.contextmanager
        def both():
            with lk:
                d = self.repo_dir(key)
                d.mkdir(parents=True, exist_ok=True)
                with open(d / ".lock", "a+") as f:
                    fcntl.flock(f, fcntl.LOCK_EX)
                    try:
                        yield
                    finally:
                        fcntl.flock(f, fcntl.LOCK_UN)

        return both()

    def repo_meta(self, key: RepoKey) -> dict | None:
        try:
            return json.loads((self.repo_dir(key) / "repo.json").read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except HubError:
            return None

    def list_repos(self, type_: str | None = None) -> list[tuple[RepoKey, dict]]:
        out = []
        for t in REPO_TYPES if type_ is None else (type_,):
            base = self.root / "repos" / t
            if not base.is_dir():
                continue
            for ns in sorted(base.iterdir()):
                for name in sorted(ns.iterdir()) if ns.is_dir() else []:
                    key = RepoKey(t, ns.name, name.name)
                    meta = self.repo_meta(key)
                    if meta is not None:
                        out.append((key, meta))
        return out

    def create_repo(self, key: RepoKey, private: bool, owner: str, extra: dict | None = None) -> None:
        if key.type not in REPO_TYPES:
            raise HubError(400, "InvalidRepoType", f"unknown repo type {key.type!r}")
        for part in (key.ns, key.name):
            if not isinstance(part, str) or not NAME_RE.match(part) or ".." in part or part.endswith(".git"):
                raise HubError(400, "InvalidRepoName", f"invalid repo name {key.id!r}")
        with self.lock(key):
            if self.repo_meta(key) is not None:
                raise HubError(409, "RepoExists", f"{key.type} repo {key.id} already exists")
            d = self.repo_dir(key)
            (d / "commits").mkdir(parents=True, exist_ok=True)
            sha = self.put_bytes(GITATTRIBUTES)
            tree = {".gitattributes": {"blob": sha, "size": len(GITATTRIBUTES), "oid": git_blob_sha1(GITATTRIBUTES),
                                       "lfs": False}}
            cid = self._write_commit(key, [], tree, owner, "initial commit", "")
            atomic_write(d / "refs.json", json.dumps({"branches": {"main": cid}, "tags": {}}).encode(), self.tmp_dir)
            # repo.json last: the repo exists only once it is complete
            atomic_write(d / "repo.json", json.dumps({"private": bool(private), "created": now_iso(),
                                                      "owner": owner, **(extra or {})}).encode(), self.tmp_dir)

    def move_repo(self, src: RepoKey, dst: RepoKey) -> None:
        """Rename ``src`` to ``dst`` (one rename of its folder, under both repo locks, taken in
        a fixed order so two opposite moves cannot deadlock)."""
        for part in (dst.ns, dst.name):
            if not NAME_RE.match(part) or ".." in part or part.endswith(".git"):
                raise HubError(400, "InvalidRepoName", f"invalid repo name {dst.id!r}")
        if src == dst:
            raise HubError(400, "InvalidRepoName", "move_repo: fromRepo and toRepo are the same")
        first, second = sorted((src, dst), key=lambda k: (k.ns, k.name))
        with self.lock(first), self.lock(second):
            if self.repo_meta(src) is None:
                raise HubError(404, "RepoNotFound", f"repository {src.id} not found")
            if self.repo_meta(dst) is not None:
                raise HubError(409, "RepoExists", f"{dst.type} repo {dst.id} already exists")
            d = self.repo_dir(dst)
            trash = Path(tempfile.mkdtemp(dir=self.tmp_dir, prefix="moved."))
            os.replace(d, trash / "empty")  # the folder the lock made for dst (holds only .lock)
            os.replace(self.repo_dir(src), d)
            _fsync_dir(d.parent)
            _fsync_dir(self.repo_dir(src).parent)
            shutil.rmtree(trash, ignore_errors=True)
        with self._cache_guard:
            for k in [k for k in self._commit_cache if k[0] in (src, dst)]:
                del self._commit_cache[k]

    def super_squash(self, key: RepoKey, branch: str, author: str, message: str) -> str:
        """Replace the history of ``branch`` by one parentless commit with its current tree
        (older commits stay readable by sha, as on the Hub until garbage collection)."""
        with self.lock(key):
            refs = self.refs(key)
            head = refs["branches"].get(branch)
            if head is None:
                raise HubError(404, "RevisionNotFound", f"branch {branch!r} not found in {key.id}")
            tree = self.commit_obj(key, head)["tree"]
            cid = self._write_commit(key, [], tree, author, message, "")
            refs["branches"][branch] = cid
            self._write_refs(key, refs)
            return cid

    def rewrite_history(self, key: RepoKey, edit) -> dict[str, str]:
        """Rewrite every commit of ``key`` (on a branch, a tag, or only readable by sha) with
        ``edit(commit) -> (tree, title, message)``, keeping author and date. A commit whose
        edited tree equals its new parent's tree although the original changed something is
        dropped (its children take its parent). Branches and tags move to the rewritten
        commits and the replaced commit files are deleted, so what the edit removed is no
        longer readable at any revision. Returns ``{old id: new id}`` of the commits that changed."""
        with self.lock(key):
            d = self.repo_dir(key) / "commits"
            objs = {}
            for f in d.glob("*.json"):
                objs[f.stem] = json.loads(f.read_bytes())
            order, seen = [], set()
            for start in sorted(objs):  # parents first (iterative DFS)
                stack = [(start, False)]
                while stack:
                    cid, done = stack.pop()
                    if done:
                        order.append(cid)
                        continue
                    if cid in seen or cid not in objs:
                        continue
                    seen.add(cid)
                    stack.append((cid, True))
                    stack.extend((p, False) for p in objs[cid]["parents"])
            new: dict[str, str] = {}
            new_tree: dict[str, dict] = {}
            for cid in order:
                c = objs[cid]
                parents = [new.get(p, p) for p in c["parents"]]
                tree, title, message = edit(c)
                old_parent = objs.get(c["parents"][0], {}).get("tree") if c["parents"] else None
                if parents and old_parent is not None and tree == new_tree.get(parents[0]) and c["tree"] != old_parent:
                    new[cid] = parents[0]  # only added what the edit removed
                    continue
                if parents == c["parents"] and tree == c["tree"] and (title, message) == (c["title"], c["message"]):
                    new[cid], new_tree[cid] = cid, c["tree"]
                    continue
                body = {"parents": parents, "author": c["author"], "date": c["date"], "title": title,
                        "message": message, "tree": tree}
                raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
                nid = hashlib.sha1(b"commit %d\0" % len(raw) + raw).hexdigest()
                body["id"] = nid
                atomic_write(d / f"{nid}.json", json.dumps(body).encode(), self.tmp_dir)
                new[cid], new_tree[nid] = nid, tree
            changed = {o: n for o, n in new.items() if o != n}
            if not changed:
                return {}
            refs = self.refs(key)
            refs["branches"] = {b: new.get(c, c) for b, c in refs["branches"].items()}
            for t in refs["tags"].values():
                t["commit"] = new.get(t["commit"], t["commit"])
            self._write_refs(key, refs)
            for old in changed:
                if old not in new.values():
                    (d / f"{old}.json").unlink(missing_ok=True)
            _fsync_dir(d)
        with self._cache_guard:
            for k in [k for k in self._commit_cache if k[0] == key and k[1] in changed]:
                del self._commit_cache[k]
        return changed

    def last_commits(self, key: RepoKey, cid: str, paths: list[str], max_commits: int = 2000) -> dict[str, dict]:
        """{path: {id, title, date}} of the newest commit from ``cid`` back that changed each
        file, or any file under each folder, in ``paths`` (the tree's ``expand`` answer)."""
        todo = set(paths)
        out: dict[str, dict] = {}
        n = 0
        while cid and todo and n < max_commits:
            c = self.commit_obj(key, cid)
            parent = self.commit_obj(key, c["parents"][0])["tree"] if c["parents"] else {}
            tree = c["tree"]
            changed = {p for p in tree if p not in parent or parent[p]["blob"] != tree[p]["blob"]}
            changed |= {p for p in parent if p not in tree}
            touched = set(changed)  # the changed files and every folder above them
            for q in changed:
                parts = q.split("/")
                touched.update("/".join(parts[:i]) for i in range(1, len(parts)))
            info = {"id": c["id"], "title": c["title"], "date": c["date"]}
            for p in todo & touched:
                out[p] = info
            todo -= touched
            cid = c["parents"][0] if c["parents"] else None
            n += 1
        return out

    def delete_repo(self, key: RepoKey) -> None:
        with self.lock(key):
            d = self.repo_dir(key)
            if self.repo_meta(key) is None:
                raise HubError(404, "RepoNotFound", f"repository {key.id} not found")
            os.unlink(d / "repo.json")
            _fsync_dir(d)
            trash = Path(tempfile.mkdtemp(dir=self.tmp_dir, prefix="deleted."))
            os.replace(d, trash / "repo")
            shutil.rmtree(trash, ignore_errors=True)
        with self._cache_guard:
            for k in [k for k in self._commit_cache if k[0] == key]:
                del self._commit_cache[k]

    def set_private(self, key: RepoKey, private: bool) -> None:
        with self.lock(key):
            meta = self.repo_meta(key)
            if meta is None:
                raise HubError(404, "RepoNotFound", f"repository {key.id} not found")
            meta["private"] = bool(private)
            atomic_write(self.repo_dir(key) / "repo.json", json.dumps(meta).encode(), self.tmp_dir)

    # ---- refs and commits -----------------------------------------------------------------
    def refs(self, key: RepoKey) -> dict:
        try:
            return json.loads((self.repo_dir(key) / "refs.json").read_bytes())
        except FileNotFoundError:
            raise HubError(404, "RepoNotFound", f"repository {key.id} not found") from None

    def _write_refs(self, key: RepoKey, refs: dict) -> None:
        atomic_write(self.repo_dir(key) / "refs.json", json.dumps(refs).encode(), self.tmp_dir)

    def _write_commit(self, key: RepoKey, parents: list[str], tree: dict, author: str, title: str,
                      message: str) -> str:
        body = {"parents": parents, "author": author, "date": now_iso(), "title": title, "message": message,
                "tree": tree}
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        cid = hashlib.sha1(b"commit %d\0" % len(raw) + raw).hexdigest()
        body["id"] = cid
        atomic_write(self.repo_dir(key) / "commits" / f"{cid}.json", json.dumps(body).encode(), self.tmp_dir)
        return cid

    def commit_obj(self, key: RepoKey, cid: str) -> dict:
        ck = (key, cid)
        with self._cache_guard:
            hit = self._commit_cache.get(ck)
            if hit is not None:
                self._commit_cache.move_to_end(ck)
                return hit
        try:
            obj = json.loads((self.repo_dir(key) / "commits" / f"{cid}.json").read_bytes())
        except FileNotFoundError:
            raise HubError(404, "RevisionNotFound", f"revision {cid} not found in {key.id}") from None
        with self._cache_guard:
            self._commit_cache[ck] = obj
            while len(self._commit_cache) > 512:
                self._commit_cache.popitem(last=False)
        return obj

    def resolve(self, key: RepoKey, rev: str | None) -> str:
        """Commit sha of a branch, tag or full sha."""
        rev = rev or "main"
        refs = self.refs(key)
        if rev in refs["branches"]:
            return refs["branches"][rev]
        if rev in refs["tags"]:
            return refs["tags"][rev]["commit"]
        for prefix, table in (("refs/heads/", "branches"), ("refs/tags/", "tags")):
            if rev.startswith(prefix) and rev[len(prefix):] in refs[table]:
                v = refs[table][rev[len(prefix):]]
                return v if isinstance(v, str) else v["commit"]
        if HEX40.match(rev) and (self.repo_dir(key) / "commits" / f"{rev}.json").is_file():
            return rev
        raise HubError(404, "RevisionNotFound", f"revision {rev!r} not found in {key.id}")

    def tree(self, key: RepoKey, rev: str | None) -> tuple[str, dict]:
        cid = self.resolve(key, rev)
        return cid, self.commit_obj(key, cid)["tree"]

    def history(self, key: RepoKey, rev: str | None) -> list[dict]:
        cid = self.resolve(key, rev)
        out = []
        seen = set()
        while cid and cid not in seen:
            seen.add(cid)
            c = self.commit_obj(key, cid)
            out.append(c)
            cid = c["parents"][0] if c["parents"] else None
        return out

    def commit(self, key: RepoKey, branch: str, ops: list[dict], author: str, title: str, message: str = "",
               parent_commit: str | None = None, create_branch: bool = False) -> str:
        """Apply ``ops`` (dicts: {op: add, path, blob, size, oid, lfs} | {op: delete, path} |
        {op: delete_folder, path}) on top of ``branch`` and move the branch atomically."""
        with self.lock(key):
            if self.repo_meta(key) is None:
                raise HubError(404, "RepoNotFound", f"repository {key.id} not found")
            refs = self.refs(key)
            head = refs["branches"].get(branch)
            if head is None:
                if not create_branch:
                    raise HubError(404, "RevisionNotFound", f"branch {branch!r} not found in {key.id}")
                head = refs["branches"].get("main")
            if parent_commit is not None and parent_commit != head:
                raise HubError(412, "PreconditionFailed",
                               f"parent commit {parent_commit} is not the head {head} of {branch!r}")
            tree = dict(self.commit_obj(key, head)["tree"]) if head else {}
            for op in ops:
                path = op["path"]
                if op["op"] == "add":
                    if not self.has_blob(op["blob"]):
                        raise HubError(400, "BlobNotFound", f"content of {path!r} was never uploaded")
                    for existing in tree:  # a file cannot also be a folder
                        if existing.startswith(path + "/"):
                            raise HubError(400, "InvalidPath", f"{path!r} is a folder in {key.id}")
                    parts = path.split("/")
                    for i in range(1, len(parts)):
                        if "/".join(parts[:i]) in tree:
                            raise HubError(400, "InvalidPath", f"{'/'.join(parts[:i])!r} is a file in {key.id}")
                    tree[path] = {k: op[k] for k in ("blob", "size", "oid", "lfs")}
                elif op["op"] == "delete":
                    if path not in tree:
                        raise HubError(404, "EntryNotFound", f"{path!r} does not exist in {branch!r}")
                    del tree[path]
                elif op["op"] == "delete_folder":
                    prefix = path.rstrip("/") + "/"
                    gone = [p for p in tree if p.startswith(prefix)]
                    if not gone:
                        raise HubError(404, "EntryNotFound", f"folder {path!r} does not exist in {branch!r}")
                    for p in gone:
                        del tree[p]
            cid = self._write_commit(key, [head] if head else [], tree, author, title, message)
            refs["branches"][branch] = cid
            self._write_refs(key, refs)
            return cid

    def repo_has_blob(self, key: RepoKey, sha256: str) -> bool:
        """Whether any commit of the repo (any branch, tag or squashed history) holds ``sha256``:
        a CommitOperationCopy may name an LFS file of an old revision of the repo itself."""
        for f in (self.repo_dir(key) / "commits").glob("*.json"):
            if any(e["blob"] == sha256 for e in self.commit_obj(key, f.stem)["tree"].values()):
                return True
        return False

    def create_branch(self, key: RepoKey, branch: str, start: str | None) -> str:
        check_ref_name(branch)
        with self.lock(key):
            refs = self.refs(key)
            if branch in refs["branches"]:
                raise HubError(409, "BranchExists", f"branch {branch!r} already exists")
            cid = self.resolve(key, start or "main")
            refs["branches"][branch] = cid
            self._write_refs(key, refs)
            return cid

    def delete_branch(self, key: RepoKey, branch: str) -> None:
        with self.lock(key):
            refs = self.refs(key)
            if branch not in refs["branches"]:
                raise HubError(404, "RevisionNotFound", f"branch {branch!r} not found")
            if branch == "main":
                raise HubError(403, "Forbidden", "the main branch cannot be deleted")
            del refs["branches"][branch]
            self._write_refs(key, refs)

    def create_tag(self, key: RepoKey, tag: str, rev: str | None, message: str = "") -> str:
        check_ref_name(tag)
        with self.lock(key):
            refs = self.refs(key)
            if tag in refs["tags"]:
                raise HubError(409, "TagExists", f"tag {tag!r} already exists")
            cid = self.resolve(key, rev)
            refs["tags"][tag] = {"commit": cid, "message": message or "", "date": now_iso()}
            self._write_refs(key, refs)
            return cid

    def delete_tag(self, key: RepoKey, tag: str) -> None:
        with self.lock(key):
            refs = self.refs(key)
            if tag not in refs["tags"]:
                raise HubError(404, "RevisionNotFound", f"tag {tag!r} not found")
            del refs["tags"][tag]
            self._write_refs(key, refs)


def file_entry_json(path: str, e: dict) -> dict:
    """Tree / paths-info shape of one file."""
    if e["lfs"]:
        ptr = lfs_pointer(e["blob"], e["size"])
        return {"type": "file", "oid": git_blob_sha1(ptr), "size": e["size"], "path": path,
                "lfs": {"oid": e["blob"], "size": e["size"], "pointerSize": len(ptr)}}
    return {"type": "file", "oid": e["oid"], "size": e["size"], "path": path}


def folder_oid(tree: dict, prefix: str) -> str:
    h = hashlib.sha1()
    for p in sorted(tree):
        if p.startswith(prefix):
            h.update(p.encode() + b"\0" + tree[p]["blob"].encode())
    return h.hexdigest()


def list_tree(tree: dict, path: str, recursive: bool) -> list[dict] | None:
    """Entries under ``path`` ('' = root), or None when ``path`` is not a folder."""
    prefix = path.rstrip("/") + "/" if path else ""
    files = sorted(p for p in tree if p.startswith(prefix))
    if path and not files:
        return None
    out = []
    dirs_seen = set()
    for p in files:
        rest = p[len(prefix):]
        parts = rest.split("/")
        for i in range(1, len(parts)):
            d = prefix + "/".join(parts[:i])
            if d not in dirs_seen and (recursive or i == 1):
                dirs_seen.add(d)
                out.append({"type": "directory", "oid": folder_oid(tree, d + "/"), "path": d})
        if recursive or len(parts) == 1:
            out.append(file_entry_json(p, tree[p]))
    return out


def decode_b64(content: str, path: str) -> bytes:
    try:
        return base64.b64decode(content, validate=True)
    except Exception as exc:
        raise HubError(400, "MalformedNdjson", f"content of {path!r} is not valid base64") from exc


def iter_existing(paths: Iterable[str], tree: dict):
    for p in paths:
        if p in tree:
            yield p, tree[p]
