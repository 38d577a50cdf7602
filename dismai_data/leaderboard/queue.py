"""The submission queue: plain files under ``<hub storage>/leaderboard/``.

Layout::

    jobs/<id>.json        the submission (written once, never changed)
    queued/<id>           waiting to be scored
    claimed/<id>          being scored: JSON {worker, pid, attempts, claimed_at}; its mtime is
                          the lease heartbeat (touched while the scoring runs)
    done/<id>             finished: JSON {status: scored|failed, reason, leaderboard_commit, ...}

Every state change is one atomic ``rename`` (claim: queued -> claimed, so only one worker
gets a job) or an atomic write (temporary file + rename). A claim whose heartbeat is older
than the lease is put back in queued/ by any worker (the worker that held it died). A job
is moved to done/ only after its row is committed to ``dismai/leaderboard``; the commit
itself skips a submission id that is already there, so a job scored twice (a worker killed
after committing, before moving the job to done/) never gives two rows.

A submission's id is derived from the task and the sha256 of the predictions' content, so
the same predictions submitted twice for one task get the same id: the second submission
is recognised (``O_EXCL`` link of the job file) and answered with the first one's id.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path

from dismai_data.hub.storage import atomic_write

STATES = ("queued", "claimed", "done")


def submission_id(task: str, content_sha256: str) -> str:
    return "sub-" + hashlib.sha256(f"{task}\n{content_sha256}".encode()).hexdigest()[:20]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Queue:
    def __init__(self, storage: str | os.PathLike):
        self.root = Path(storage) / "leaderboard"
        for d in ("jobs", "tmp", *STATES):
            (self.root / d).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ helpers
    def _atomic(self, path: Path, data: dict) -> None:
        atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode(), self.root / "tmp")

    def _path(self, state: str, sid: str) -> Path:
        return self.root / state / sid

    def job_path(self, sid: str) -> Path:
        return self.root / "jobs" / f"{sid}.json"

    @staticmethod
    def _read(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    # ------------------------------------------------------------------ submit
    def enqueue(self, job: dict) -> tuple[dict, bool]:
        """Store ``job`` (needs ``task`` and ``content_sha256``) and queue it. Returns
        ``(job, created)``; ``created`` is False when the same task + content was submitted
        before, and then the job returned is the earlier one."""
        sid = submission_id(job["task"], job["content_sha256"])
        job = dict(job, id=sid, submitted_at=job.get("submitted_at") or _now())
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix=sid + ".")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(job, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, self.job_path(sid))  # atomic create-if-absent
            except FileExistsError:
                earlier = self._read(self.job_path(sid)) or {"id": sid}
                return earlier, False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._atomic(self._path("queued", sid), {"attempts": 0})
        return job, True

    def job(self, sid: str) -> dict | None:
        if not sid.startswith("sub-") or "/" in sid or len(sid) > 64:
            return None
        return self._read(self.job_path(sid))

    def state(self, sid: str) -> tuple[str, dict]:
        """(``queued`` | ``scoring`` | ``scored`` | ``failed`` | ``unknown``, details)."""
        done = self._read(self._path("done", sid))
        if done is not None:
            return done.get("status", "scored"), done
        claim = self._read(self._path("claimed", sid))
        if claim is not None:
            return "scoring", claim
        if self._path("queued", sid).exists():
            return "queued", self._read(self._path("queued", sid)) or {}
        return ("queued", {}) if self.job_path(sid).exists() else ("unknown", {})

    def counts(self) -> dict[str, int]:
        return {s: len(os.listdir(self.root / s)) for s in STATES}

    # ------------------------------------------------------------------ worker side
    def recover(self, lease_s: float, orphan_age_s: float = 60.0) -> list[str]:
        """Put stale claims back in the queue; queue jobs that have no state (an enqueue that
        died between its two steps); drop markers of jobs already done. Returns the ids
        re-queued."""
        requeued = []
        now = time.time()
        done = set(os.listdir(self.root / "done"))
        for state in ("queued", "claimed"):
            for sid in os.listdir(self.root / state):
                if sid in done:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._path(state, sid))
        for sid in os.listdir(self.root / "claimed"):
            p = self._path("claimed", sid)
            try:
                if now - p.stat().st_mtime <= lease_s:
                    continue
                os.rename(p, self._path("queued", sid))
                requeued.append(sid)
            except FileNotFoundError:
                continue
        known = set(os.listdir(self.root / "queued")) | set(os.listdir(self.root / "claimed")) | done
        for name in os.listdir(self.root / "jobs"):
            sid = name.removesuffix(".json")
            if sid not in known and now - (self.root / "jobs" / name).stat().st_mtime > orphan_age_s:
                self._atomic(self._path("queued", sid), {"attempts": 0})
                requeued.append(sid)
        return requeued

    def claim(self, worker: str | None = None) -> tuple[dict, dict] | None:
        """Take the oldest queued job: ``(job, claim)`` or None."""
        names = []
        for sid in os.listdir(self.root / "queued"):
            job = self.job(sid)
            if job is not None:
                names.append((job.get("submitted_at", ""), sid, job))
        for _, sid, job in sorted(names):
            src, dst = self._path("queued", sid), self._path("claimed", sid)
            info = self._read(src) or {}
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                continue  # another worker took it
            os.utime(dst)
            claim = {"attempts": int(info.get("attempts", 0)) + 1, "claimed_at": _now(), "pid": os.getpid(),
                     "worker": worker or f"{socket.gethostname()}:{os.getpid()}",
                     "history": list(info.get("history", []))}
            self._atomic(dst, claim)
            return job, claim
        return None

    def heartbeat(self, sid: str) -> bool:
        """Renew the lease; False when the claim is no longer ours to renew (re-queued)."""
        try:
            os.utime(self._path("claimed", sid))
            return True
        except FileNotFoundError:
            return False

    def release(self, sid: str, claim: dict, why: str) -> None:
        """Give a claimed job back to the queue (worker stopping, scoring crashed)."""
        hist = list(claim.get("history", [])) + [f"{_now()} attempt {claim.get('attempts')}: {why}"]
        p = self._path("claimed", sid)
        if p.exists():
            self._atomic(p, dict(claim, history=hist))
            with contextlib.suppress(FileNotFoundError):
                os.rename(p, self._path("queued", sid))

    def finish(self, sid: str, record: dict) -> None:
        """Mark done (after the leaderboard row is committed)."""
        self._atomic(self._path("done", sid), dict(record, finished_at=_now()))
        for state in ("claimed", "queued"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(state, sid))
