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

The class :class:`Storage` is the repos (this module) on top of :class:`.objects.ObjectStore`
(blobs, xorbs) and :class:`.history.CommitStore` (commits, refs); names, errors and atomic
writes are :mod:`.common` (re-exported here).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

from dismai_data.hub.common import (  # noqa: F401  (re-exported: the storage's public names)
    GITATTRIBUTES,
    HEX40,
    HEX64,
    NAME_RE,
    REPO_TYPES,
    HubError,
    RepoKey,
    atomic_write,
    check_path,
    check_ref_name,
    decode_b64,
    fsync_dir,
    fsync_file,
    git_blob_sha1,
    lfs_pointer,
    now_iso,
)
from dismai_data.hub.history import CommitStore
from dismai_data.hub.objects import BlobWriter, ObjectStore  # noqa: F401  (BlobWriter re-exported)


class Storage(ObjectStore, CommitStore):
    """The hub's storage under one root folder (layout above)."""

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
            fsync_dir(d.parent)
            fsync_dir(self.repo_dir(src).parent)
            shutil.rmtree(trash, ignore_errors=True)
        with self._cache_guard:
            for k in [k for k in self._commit_cache if k[0] in (src, dst)]:
                del self._commit_cache[k]

    def delete_repo(self, key: RepoKey) -> None:
        with self.lock(key):
            d = self.repo_dir(key)
            if self.repo_meta(key) is None:
                raise HubError(404, "RepoNotFound", f"repository {key.id} not found")
            os.unlink(d / "repo.json")
            fsync_dir(d)
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


def iter_existing(paths: Iterable[str], tree: dict):
    for p in paths:
        if p in tree:
            yield p, tree[p]
