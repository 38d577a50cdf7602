"""Commits and refs of a repo: immutable commit objects (``commits/<sha>.json``, cached),
``refs.json`` (branches and tags), revision resolution, history, the commit of a list of
operations, branches and tags, super-squash and history rewriting."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

from dismai_data.hub.common import HEX40, HubError, RepoKey, atomic_write, check_ref_name, fsync_dir, now_iso

COMMIT_CACHE = 512


class CommitStore:
    """A mixin of :class:`dismai_data.hub.storage.Storage` (needs ``repo_dir``, ``lock``,
    ``repo_meta``, ``has_blob``, ``tmp_dir``, ``_commit_cache`` and ``_cache_guard``)."""

    _commit_cache: OrderedDict[tuple, dict]

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
            while len(self._commit_cache) > COMMIT_CACHE:
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
            fsync_dir(d)
        with self._cache_guard:
            for k in [k for k in self._commit_cache if k[0] == key and k[1] in changed]:
                del self._commit_cache[k]
        return changed
