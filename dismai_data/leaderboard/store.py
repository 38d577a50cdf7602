"""Which leaderboard rows are public, and where the others are kept.

The ``dismai/leaderboard`` dataset repo is public, so it may hold only rows that everyone may
see: a row is published there exactly when its predictions repo exists and is public (the
rule by which the page hides rows from anonymous visitors). Every other row (its
predictions repo private, deleted or renamed) is *withheld*: kept as one JSON file per row
in ``<hub storage>/leaderboard/withheld/<submission_id>.json``, which no hub endpoint
serves; the page, ``GET /api/leaderboard`` and the submission status merge the withheld rows
in and show each row only to those who may read its predictions repo.

* :func:`record_row` (the scoring child, instead of appending blindly): under the store
  lock, appends the row to ``dismai/leaderboard`` when its predictions repo is public, else
  withholds it.
* :func:`reconcile` (the hub, after a dataset repo is made private or public, created,
  deleted or renamed): under the same lock, withholds the published rows that are no longer
  public and purges them from the repo's whole history (every commit is rewritten without
  them and the old commits are deleted, so no revision, sha or commit title still has them),
  and publishes the withheld rows whose predictions repo is public again.

The lock (a thread lock plus ``flock`` on ``leaderboard/rows.lock``) serialises the scoring
child's "is the repo public? then append" with a visibility change followed by its
reconcile: a row appended before the change is purged by the reconcile, one scored after
it is withheld.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from pathlib import Path

from .rows import CARD, DATA_PATH, REPO_ID, rows_from_bytes, rows_to_bytes

AUTHOR = "dismai-leaderboard"
_thread_locks: dict[str, threading.RLock] = {}
_guard = threading.Lock()
_held = threading.local()


def _dir(storage_root) -> Path:
    return Path(storage_root) / "leaderboard" / "withheld"


@contextlib.contextmanager
def lock(storage_root):
    """The store lock (re-entrant in one thread; exclusive across threads and processes)."""
    root = str(Path(storage_root).resolve())
    with _guard:
        tl = _thread_locks.setdefault(root, threading.RLock())
    with tl:
        depth = getattr(_held, root, 0)
        if depth:
            setattr(_held, root, depth + 1)
            try:
                yield
            finally:
                setattr(_held, root, depth)
            return
        p = Path(root) / "leaderboard" / "rows.lock"
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            setattr(_held, root, 1)
            try:
                yield
            finally:
                setattr(_held, root, 0)
                fcntl.flock(f, fcntl.LOCK_UN)


def withheld_rows(storage_root) -> list[dict]:
    d = _dir(storage_root)
    if not d.is_dir():
        return []
    out = []
    for f in sorted(d.glob("*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    out.sort(key=lambda r: (r.get("scored_at") or "", r.get("submission_id") or ""))
    return out


def withheld_row(storage_root, sid: str) -> dict | None:
    try:
        return json.loads((_dir(storage_root) / f"{sid}.json").read_text())
    except (OSError, ValueError):
        return None


def _withhold(storage_root, row: dict) -> None:
    d = _dir(storage_root)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{row['submission_id']}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(row, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, d / f"{row['submission_id']}.json")


def _storage(storage_root):
    from dismai_data.hub.storage import Storage

    return storage_root if hasattr(storage_root, "repo_meta") else Storage(storage_root)


def is_public(storage, repo_id) -> bool:
    """Whether the dataset repo ``repo_id`` exists and is public."""
    from dismai_data.hub.storage import RepoKey

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        return False
    meta = storage.repo_meta(RepoKey("dataset", *repo_id.split("/")))
    return meta is not None and not meta["private"]


def _lb_key():
    from dismai_data.hub.storage import RepoKey

    return RepoKey("dataset", *REPO_ID.split("/"))


def published_rows(storage) -> tuple[str | None, list[dict]]:
    """(head commit, rows) of ``dismai/leaderboard`` at main, read from the storage."""
    from dismai_data.hub.storage import HubError

    try:
        cid, tree = storage.tree(_lb_key(), "main")
    except HubError:
        return None, []
    e = tree.get(DATA_PATH)
    return cid, [] if e is None else _rows_of(storage, e["blob"])


def _rows_of(storage, blob: str) -> list[dict]:
    """The rows of a leaderboard parquet blob ([] for a file that is not one: nothing to show
    or to withhold in it)."""
    try:
        return rows_from_bytes(storage.read_blob(blob))
    except Exception:  # noqa: BLE001 - anything an org member committed there by hand
        return []


def record_row(api, storage_root, row: dict) -> tuple[str | None, dict, bool]:
    """Store the scored (or failed) ``row`` where it belongs: appended to ``dismai/leaderboard``
    through the hub's API when its predictions repo is public, else withheld. ``(leaderboard
    commit or None, row as stored, stored now)``; a submission already recorded is not
    stored twice."""
    from dismai_data.hub.storage import HubError

    from .rows import append_row

    storage = _storage(storage_root)
    root = storage.root
    with lock(root):
        prior = withheld_row(root, row["submission_id"])
        if prior is not None:
            return None, prior, False
        if is_public(storage, row.get("predictions_repo")):
            # created in the storage, not through the API: the hub's create_repo may wait on this lock
            if storage.repo_meta(_lb_key()) is None:
                try:
                    storage.create_repo(_lb_key(), False, AUTHOR)
                except HubError as exc:
                    if exc.status != 409:
                        raise
            return append_row(api, row, create=False)
        _withhold(root, row)
        return None, row, True


def concerns(storage, repo_ids) -> bool:
    """Whether a published or withheld row names one of the dataset repos ``repo_ids`` as its
    predictions repo (a quick check without the lock: the hub reconciles only then after a
    repo is created, deleted or renamed)."""
    ids = set(repo_ids)
    rows = published_rows(storage)[1] + withheld_rows(storage.root)
    return any(r.get("predictions_repo") in ids for r in rows)


def _parquet_entry(storage, rows: list[dict]) -> dict:
    data = rows_to_bytes(rows)
    sha = storage.put_bytes(data)
    return {"blob": sha, "size": len(data), "oid": sha, "lfs": True}


def reconcile(storage_root) -> dict:
    """Make ``dismai/leaderboard`` hold exactly the rows whose predictions repo is public (see
    the module docstring). Returns ``{"withheld": [ids], "published": [ids]}``."""
    storage = _storage(storage_root)
    root = storage.root
    out = {"withheld": [], "published": []}
    with lock(root):
        head, public = published_rows(storage)
        hide = [r for r in public if not is_public(storage, r.get("predictions_repo"))]
        for r in hide:
            _withhold(root, r)
        if hide:
            _purge(storage, {r["submission_id"] for r in hide})
            out["withheld"] = [r["submission_id"] for r in hide]
            head, public = published_rows(storage)
        have = {r["submission_id"] for r in public}
        back = []
        for r in withheld_rows(root):
            sid = r["submission_id"]
            if sid in have:  # published and withheld (a crash between the two steps): keep one
                if is_public(storage, r.get("predictions_repo")):
                    (_dir(root) / f"{sid}.json").unlink(missing_ok=True)
                continue
            if is_public(storage, r.get("predictions_repo")):
                back.append(r)
        if back:
            _publish(storage, public, back)
            for r in back:
                (_dir(root) / f"{r['submission_id']}.json").unlink(missing_ok=True)
            out["published"] = [r["submission_id"] for r in back]
    return out


def _purge(storage, sids: set[str]) -> None:
    """Rewrite the history of ``dismai/leaderboard`` without the rows ``sids``."""
    filtered: dict[str, dict | None] = {}

    def edit(c):
        tree = dict(c["tree"])
        e = tree.get(DATA_PATH)
        if e is not None:
            if e["blob"] not in filtered:
                rows = _rows_of(storage, e["blob"])
                keep = [r for r in rows if r.get("submission_id") not in sids]
                filtered[e["blob"]] = None if len(keep) == len(rows) else _parquet_entry(storage, keep)
            if filtered[e["blob"]] is not None:
                tree[DATA_PATH] = filtered[e["blob"]]
        title, message = c["title"], c["message"]
        if any(s in title or s in (message or "") for s in sids):
            title, message = "update leaderboard rows", ""
        return tree, title, message

    storage.rewrite_history(_lb_key(), edit)


def _publish(storage, public: list[dict], back: list[dict]) -> str:
    from dismai_data.hub.storage import git_blob_sha1

    key = _lb_key()
    if storage.repo_meta(key) is None:
        storage.create_repo(key, False, AUTHOR)
    ops = [{"op": "add", "path": DATA_PATH, **_parquet_entry(storage, public + back)}]
    _, tree = storage.tree(key, "main")
    if "README.md" not in tree:
        card = CARD.encode()
        ops.append({"op": "add", "path": "README.md", "blob": storage.put_bytes(card), "size": len(card),
                    "oid": git_blob_sha1(card), "lfs": False})
    if len(back) == 1:
        r = back[0]
        title = f"{r['status']}: {r['model_name']} on {r['task']} ({r['submission_id']})"
    else:
        title = f"{len(back)} rows whose predictions repos are public again"
    return storage.commit(key, "main", ops, AUTHOR, title)

