"""schemathesis against the hub's own OpenAPI document: no 5xx, no unhandled exception.

The default run is small (a few examples per operation); the full one is marked slow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import HubServer

ST = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")


def _run(tmp_path, max_examples: int, phases: str | None, auth: bool = True):
    if ST is None:
        pytest.skip("schemathesis is not installed (pip install schemathesis==4.32.5)")
    hub = HubServer(tmp_path / "st").start()
    try:
        token = hub.token("alice", "write")
        assert hub.request("POST", "/api/repos/create", {"name": "secure"}, token=token)[0] == 200
        st, _, doc = hub.request("GET", "/openapi.json")
        assert st == 200 and json.loads(doc)["openapi"].startswith("3.")
        cmd = [ST, "run", f"{hub.url}/openapi.json", "-c", "not_a_server_error",
               "--max-examples", str(max_examples), "--seed", "7", "--continue-on-failure",
               "--request-timeout", "30"] + (["-H", f"Authorization: Bearer {token}"] if auth else [])
        if phases:
            cmd += ["--phases", phases]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        out = proc.stdout + proc.stderr
        log = hub.log.read_text()
    finally:
        hub.stop()
    assert "Server error" not in out and "ST101" not in out, out[-6000:]
    assert "Traceback" not in log and "internal error" not in log, log[-6000:]
    assert "Tested:" in out, out[-3000:]


def test_schemathesis_quick(tmp_path):
    _run(tmp_path, max_examples=5, phases="examples,fuzzing")


def test_schemathesis_quick_anonymous(tmp_path):
    """The same without a token: every write path's refusal and every read of a missing or
    private repo must be a 4xx too."""
    _run(tmp_path, max_examples=5, phases="examples,fuzzing", auth=False)


@pytest.mark.slow
def test_schemathesis_full(tmp_path):
    _run(tmp_path, max_examples=50, phases=None)
