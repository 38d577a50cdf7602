"""The scoring worker: takes queued submissions one at a time and scores each in a child
process (:mod:`dismai_data.leaderboard.score`), renewing the job's lease while it runs.

It runs inside the hub (a daemon thread started by the first request once the hub knows its
own address, mounted by :func:`dismai_data.leaderboard.routes.mount`;
``DISMAI_LEADERBOARD_WORKER=0`` switches it off) or alone: ``dismai leaderboard worker --home
DIR --endpoint URL``. Several workers may share one queue (claims are atomic renames).

Failure handling: a child that exits without a result (crash, killed) puts the job back in
the queue; after :data:`MAX_ATTEMPTS` attempts, or when scoring runs past the timeout, a
``failed`` row with the reason is committed instead. A worker that is killed leaves its
claim behind; it goes back to the queue when its lease (heartbeat) is older than
``lease_s``, and the job is scored again (the commit skips a submission already on the
leaderboard, so nothing is duplicated).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from .queue import Queue

log = logging.getLogger("dismai_data.leaderboard")
MAX_ATTEMPTS = 3
DEFAULT_LEASE_S = 120.0
DEFAULT_TIMEOUT_S = 6 * 3600.0


def worker_token(storage: str | os.PathLike) -> str:
    """The worker's write token for the ``dismai`` org (user ``dismai-leaderboard``), kept in
    ``leaderboard/worker-token`` (mode 600) and re-used while it is valid."""
    from dismai_data.hub.auth import Auth
    from dismai_data.hub.publish import publisher_token

    p = Path(storage) / "leaderboard" / "worker-token"
    if p.exists():
        tok = p.read_text().strip()
        if Auth(storage).user_for_token(tok) is not None:
            return tok
    tok = publisher_token(storage, user="dismai-leaderboard", org="dismai")
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(p) + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tok)
    os.replace(str(p) + ".tmp", p)
    return tok


def child_env(endpoint: str, token: str, storage: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    cache = storage / "leaderboard" / "cache"
    env.update(HF_ENDPOINT=endpoint, HF_TOKEN=token, HF_HOME=str(cache / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1", DISMAI_NO_PROGRESS="1",
               HF_XET_CACHE=str(cache / "xet"), DISMAI_LEADERBOARD_CACHE=str(cache / "files"),
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return env


class Worker:
    def __init__(self, storage: str | os.PathLike, endpoint: str, token: str | None = None,
                 lease_s: float = DEFAULT_LEASE_S, timeout_s: float = DEFAULT_TIMEOUT_S, poll_s: float = 1.0,
                 relax: bool = True, name: str | None = None):
        self.storage = Path(storage)
        self._queue: Queue | None = None
        self.endpoint = endpoint.rstrip("/")
        self._token = token
        self.lease_s, self.timeout_s, self.poll_s, self.relax = lease_s, timeout_s, poll_s, relax
        self.name = name
        self.stop_event = threading.Event()
        self.child: subprocess.Popen | None = None

    @property
    def queue(self) -> Queue:
        if self._queue is None:
            self._queue = Queue(self.storage)
        return self._queue

    @property
    def token(self) -> str:
        if self._token is None:  # made when first needed, so an idle hub writes nothing
            self._token = worker_token(self.storage)
        return self._token

    def _active(self) -> bool:
        return self._queue is not None or (self.storage / "leaderboard" / "jobs").is_dir()

    def _command(self, sid: str, claim: dict, out: Path, fail: str | None) -> list[str]:
        """The scoring child's command line (:mod:`dismai_data.leaderboard.score`)."""
        cmd = [sys.executable, "-m", "dismai_data.leaderboard.score", "--job", str(self.queue.job_path(sid)),
               "--endpoint", self.endpoint, "--out", str(out), "--work", str(self.storage / "leaderboard" / "work"),
               "--storage", str(self.storage), "--attempts", str(claim["attempts"])]
        if fail:
            cmd += ["--fail", fail]
        if not self.relax:
            cmd.append("--no-relax")
        return cmd

    def _supervise(self, sid: str, fail: str | None) -> tuple[int | None, str]:
        """Wait for ``self.child``, renewing the job's lease; ``(exit code, "")``, or ``(None,
        why)`` when it was stopped or ran past the timeout (then it is terminated or killed)."""
        t0 = time.monotonic()
        deadline = t0 + (self.timeout_s if not fail else max(self.timeout_s, 600))
        beat = max(0.2, self.lease_s / 4)
        next_beat = t0 + beat
        while True:
            # wake for whichever comes first: the next heartbeat or the deadline, so a
            # timeout shorter than the heartbeat interval is still enforced on time
            now = time.monotonic()
            try:
                return self.child.wait(timeout=max(0.01, min(next_beat, deadline) - now)), ""
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now >= next_beat:
                self.queue.heartbeat(sid)
                next_beat = now + beat
            if self.stop_event.is_set():
                self.child.terminate()
                self.child.wait(30)
                return None, "stopped"
            if now >= deadline:
                self.child.kill()
                self.child.wait()
                return None, f"timeout: scoring ran longer than {self.timeout_s:g} s"

    def _run_child(self, job: dict, claim: dict, fail: str | None = None) -> tuple[dict | None, str]:
        """Run the scoring child; ``(result, "")`` or ``(None, why it gave no result)``."""
        sid = job["id"]
        run = self.storage / "leaderboard" / "runs" / sid
        run.mkdir(parents=True, exist_ok=True)
        out = run / f"result-{claim['attempts']}.json"
        out.unlink(missing_ok=True)
        log_path = run / f"log-{claim['attempts']}.txt"
        with open(log_path, "ab") as logf:
            self.child = subprocess.Popen(self._command(sid, claim, out, fail),
                                          env=child_env(self.endpoint, self.token, self.storage),
                                          stdout=logf, stderr=logf)
            try:
                rc, why = self._supervise(sid, fail)
            finally:
                self.child = None
        if rc is None:
            return None, why
        if rc == 0 and out.exists():
            return json.loads(out.read_text()), ""
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path.exists() else []
        return None, f"scoring process exited with code {rc}" + (f": {tail[0][:500]}" if tail else "")

    def run_one(self) -> dict | None:
        """Score one queued job if there is one; returns the done record."""
        if not self._active():
            return None
        self.queue.recover(self.lease_s)
        got = self.queue.claim(self.name)
        if got is None:
            return None
        job, claim = got
        sid = job["id"]
        log.info("scoring %s (%s, attempt %d)", sid, job.get("task"), claim["attempts"])
        res, why = self._run_child(job, claim)
        if res is None and why == "stopped":
            self.queue.release(sid, claim, why)
            return None
        if res is None and (why.startswith("timeout") or claim["attempts"] >= MAX_ATTEMPTS):
            reason = why if why.startswith("timeout") else f"gave up after {claim['attempts']} attempts; last: {why}"
            res, why2 = self._run_child(job, claim, fail=reason)
            if res is None:
                self.queue.release(sid, claim, f"{why}; recording the failure also failed: {why2}")
                return None
        elif res is None:
            self.queue.release(sid, claim, why)
            return None
        row = res["row"]
        record = {"status": row["status"], "reason": row.get("reason"), "leaderboard_commit": res["commit"],
                  "attempts": claim["attempts"], "appended": res["appended"]}
        self.queue.finish(sid, record)
        log.info("%s: %s", sid, row["status"])
        return record

    def run(self, once: bool = False) -> int:
        """Loop until stopped (``once``: until the queue is empty). Returns jobs finished."""
        n = 0
        while not self.stop_event.is_set():
            try:
                rec = self.run_one()
            except Exception:  # never let a bad job or a full disk kill the loop
                log.exception("leaderboard worker error")
                rec = None
                self.stop_event.wait(self.poll_s * 5)
            if rec is not None:
                n += 1
                continue
            if once and (not self._active() or (not self.queue.counts()["queued"] and not self._others_pending())):
                break
            self.stop_event.wait(self.poll_s)
        return n

    def _others_pending(self) -> bool:
        return bool(self.queue.counts()["claimed"])

    def stop(self) -> None:
        self.stop_event.set()


class BackgroundWorker:
    """The worker thread of a hub process: starts once the hub's own address is known."""

    def __init__(self, storage: str | os.PathLike):
        self.storage = Path(storage)
        self.worker: Worker | None = None
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_started(self, endpoint: str) -> None:
        if self.thread is not None:
            return
        with self._lock:
            if self.thread is not None:
                return
            lease = float(os.environ.get("DISMAI_LEADERBOARD_LEASE_S", DEFAULT_LEASE_S))
            self.worker = Worker(self.storage, endpoint, lease_s=lease)
            self.thread = threading.Thread(target=self.worker.run, daemon=True, name="dismai-leaderboard")
            self.thread.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            child = self.worker.child
            if child is not None and child.poll() is None:
                child.terminate()
        if self.thread is not None:
            self.thread.join(10)
