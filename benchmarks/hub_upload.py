"""Push throughput of ``upload_folder`` (stock huggingface_hub client) into the local hub over
loopback, with Xet (default) and with the LFS batch path (HF_HUB_DISABLE_XET=1).

    python benchmarks/hub_upload.py [--mb 200] [--files 4]

Prints MB/s of the upload_folder call alone (client import and repo creation excluded).
Goal: >= 100 MB/s for a 200 MB folder.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path


def start_hub(storage: Path, workers: int = 1):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "dismai_data.hub.cli", "serve", "--port", str(port), "--storage",
                             str(storage), "--workers", str(workers)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/api/models", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    token = subprocess.run([sys.executable, "-m", "dismai_data.hub.cli", "token", "create", "--user", "bench",
                            "--scope", "write", "--org", "dismai", "--storage", str(storage)],
                           capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return proc, url, token


def client(url: str, token: str, home: Path, code: str, xet: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and "proxy" not in k.lower()}
    env.update(HF_ENDPOINT=url, HF_TOKEN=token, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_XET_CACHE=str(home / "xet"))
    if not xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="hub worker processes")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "folder"
        (folder / "data").mkdir(parents=True)
        per = int(args.mb * 1e6 / args.files)
        for i in range(args.files):
            (folder / "data" / f"part-{i:03d}.bin").write_bytes(os.urandom(per))
        (folder / "README.md").write_text("# bench\n")
        total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        proc, url, token = start_hub(tmp / "store", args.workers)
        try:
            for xet in (True, False):
                name = f"dismai/upload-{'xet' if xet else 'lfs'}"
                code = f"""
                import json, time
                from huggingface_hub import HfApi
                api = HfApi()
                api.create_repo({name!r})
                t0 = time.perf_counter()
                c = api.upload_folder(repo_id={name!r}, folder_path={str(folder)!r})
                dt = time.perf_counter() - t0
                t0 = time.perf_counter()
                api.upload_folder(repo_id={name!r}, folder_path={str(folder)!r})
                noop = time.perf_counter() - t0
                print(json.dumps({{"seconds": dt, "noop_seconds": noop}}))
                """
                r = client(url, token, tmp / f"home-{xet}", code, xet=xet)
                mode = "xet (default)" if xet else "lfs (HF_HUB_DISABLE_XET=1)"
                print(f"upload_folder {total / 1e6:.0f} MB in {args.files} files, {mode}, {args.workers} worker(s): "
                      f"{r['seconds']:.2f} s = {total / 1e6 / r['seconds']:.0f} MB/s "
                      f"(goal >= 100 MB/s); unchanged re-upload {r['noop_seconds']:.2f} s")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
