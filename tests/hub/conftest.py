"""Fixtures: a real hub server on 127.0.0.1 (random free port) in a subprocess, tokens, and a
helper that runs stock-client code in a fresh interpreter with only HF_ENDPOINT (and a
token) set, since huggingface_hub/datasets read HF_ENDPOINT at import time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubServer:
    def __init__(self, storage: Path, max_upload_mb: float | None = None, workers: int = 1):
        self.storage = Path(storage)
        self.workers = workers
        self.max_upload_mb = max_upload_mb
        self.proc: subprocess.Popen | None = None
        self.port = free_port()
        self.log = self.storage.parent / f"{self.storage.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "HubServer":
        cmd = [PY, "-m", "dismai_data.hub.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--storage", str(self.storage), "--mount", "dismai_data.leaderboard.routes:mount"]
        if self.max_upload_mb:
            cmd += ["--max-upload-mb", str(self.max_upload_mb)]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/api/models", timeout=2).read()
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise RuntimeError("hub did not start")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def token(self, user: str, scope: str = "write", orgs: tuple[str, ...] = ()) -> str:
        cmd = [PY, "-m", "dismai_data.hub.cli", "token", "create", "--user", user, "--scope", scope,
               "--storage", str(self.storage)]
        for o in orgs:
            cmd += ["--org", o]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return out.strip().splitlines()[-1]

    def request(self, method: str, path: str, body=None, token: str | None = None, headers: dict | None = None,
                raw: bytes | None = None):
        """(status, headers, body bytes) of one plain HTTP request."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()


def client_env(hub: HubServer, home: Path, token: str | None = None, xet: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1",
               HF_XET_CACHE=str(home / "xet"), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    if token:
        env["HF_TOKEN"] = token
    if not xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    return env


def run_client(hub: HubServer, code: str, home: Path, token: str | None = None, xet: bool = True,
               timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) in a fresh interpreter configured like a user's shell."""
    proc = subprocess.run([PY, "-c", textwrap.dedent(code)], env=client_env(hub, home, token, xet),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"client code failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-6000:]}\nserver log:\n{hub.log.read_text()[-3000:]}")
    return proc


def last_json(proc: subprocess.CompletedProcess):
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    storage = tmp_path_factory.mktemp("hubstore") / "hub"
    server = HubServer(storage, max_upload_mb=64).start()
    server.tokens = {
        "alice": server.token("alice", "write", ("dismai",)),
        "alice_read": server.token("alice", "read"),
        "bob": server.token("bob", "write"),
    }
    yield server
    server.stop()


@pytest.fixture
def client_home(tmp_path):
    home = tmp_path / "hf_home"
    home.mkdir()
    return home
