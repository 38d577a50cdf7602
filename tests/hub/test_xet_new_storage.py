"""A new hub storage behind the same host:port as an old one (e.g. a fresh
$DISMAI_HOME, same default port): the stock Xet client keeps a local dedupe cache keyed
by the CAS URL and would otherwise reference xorbs the new storage never received."""

from __future__ import annotations

from .conftest import HubServer, run_client

UPLOAD = """
import os
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
api.create_repo("alice/same-bytes", repo_type="dataset", exist_ok=True)
payload = bytes(range(256)) * 8192  # 2 MiB, the same bytes both times
os.makedirs(os.environ["HF_HOME"], exist_ok=True)
path = os.environ["HF_HOME"] + "/blob.bin"
open(path, "wb").write(payload)
api.upload_file(path_or_fileobj=path, path_in_repo="data/blob.bin", repo_id="alice/same-bytes",
                repo_type="dataset")
got = open(hf_hub_download("alice/same-bytes", "data/blob.bin", repo_type="dataset",
                           cache_dir=os.environ["HF_HOME"] + "/dl" + os.environ["ROUND"]), "rb").read()
assert got == payload
print("ok")
"""


def test_fresh_storage_on_same_port_accepts_the_same_upload(tmp_path):
    home = tmp_path / "client-home"  # one client home: its Xet cache survives between the two hubs
    first = HubServer(tmp_path / "storage-a").start()
    port = first.port
    try:
        token = first.token("alice")
        out = run_client(first, "import os; os.environ['ROUND']='1'\n" + UPLOAD, home, token=token)
        assert out.stdout.strip().endswith("ok")
    finally:
        first.stop()
    second = HubServer(tmp_path / "storage-b")
    second.port = port
    second.start()
    try:
        token = second.token("alice")
        out = run_client(second, "import os; os.environ['ROUND']='2'\n" + UPLOAD, home, token=token)
        assert out.stdout.strip().endswith("ok")
    finally:
        second.stop()
    ids = {(tmp_path / s / "instance_id").read_text() for s in ("storage-a", "storage-b")}
    assert len(ids) == 2
