"""Publishing built datasets to a hub with the stock client, and running a hub in the
background for the ``dismai main`` / ``dismai publish`` commands.

Typical use (what the lead's main command does)::

    from dismai_data.hub.publish import serve_in_background, publisher_token, publish_dataset
    hub = serve_in_background(storage_dir)            # http://127.0.0.1:<free port>
    token = publisher_token(storage_dir, org="dismai")
    info = publish_dataset(folder, "dismai/perov5", version=None, endpoint=hub.url, token=token)
    print(info["url"], info["load"])
    hub.stop()
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path


def hf_api(endpoint: str, token: str | None):
    """An ``HfApi`` of the stock client for this hub."""
    # huggingface_hub reads HF_ENDPOINT at import time: point it at the hub before the first
    # import so that no code path can fall back to huggingface.co; every call below also passes
    # the endpoint explicitly.
    os.environ.setdefault("HF_ENDPOINT", endpoint)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token)


def publish_dataset(folder: str | os.PathLike, repo_id: str, version: str | None = None, endpoint: str = "",
                    token: str | None = None, private: bool = False) -> dict:
    """Upload a built dataset folder (README.md card, data/**/*.parquet, figures/*.png,
    build_info.json) to ``repo_id`` and tag it ``v{version}``.

    Re-publishing unchanged data makes no commit (the client skips files whose remote oid
    equals the local one). Returns ``{url, commit, tag, changed, load}``. Raises
    ValueError when the tag already exists on a different commit (bump the version).
    """
    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(f"{folder}: no README.md dataset card; is this a built dataset folder?")
    if version is None:
        info_path = folder / "build_info.json"
        if not info_path.is_file():
            raise FileNotFoundError(f"{info_path}: missing; pass version= explicitly")
        version = str(json.loads(info_path.read_text())["version"])
    tag = version if version.startswith("v") else f"v{version}"
    api = hf_api(endpoint, token)
    from huggingface_hub.errors import HfHubHTTPError

    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    existing = {t.name: t.target_commit for t in refs.tags}
    url = f"{endpoint.rstrip('/')}/datasets/{repo_id}"
    load = (f'HF_ENDPOINT={endpoint} python -c "import datasets; '
            f"print(datasets.load_dataset('{repo_id}', revision='{tag}'))\"")
    if tag in existing:
        if _same_content(api, repo_id, existing[tag], folder):
            return {"url": url, "commit": existing[tag], "tag": tag, "changed": False, "load": load}
        raise ValueError(f"{repo_id}: tag {tag} already exists with different content; the data changed, "
                         f"so bump the dataset version")
    before = api.dataset_info(repo_id).sha
    commit = api.upload_folder(
        repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
        allow_patterns=["README.md", "build_info.json", "data/**", "figures/**"],
        delete_patterns=["data/**", "figures/**"],
        commit_message=f"Publish {repo_id} {tag}",
    ).oid
    changed = commit != before
    try:
        api.create_tag(repo_id, tag=tag, revision=commit, repo_type="dataset", tag_message=f"{repo_id} {tag}")
    except HfHubHTTPError as exc:  # a concurrent publisher created it
        if exc.response is None or exc.response.status_code != 409:
            raise
    return {"url": url, "commit": commit, "tag": tag, "changed": changed, "load": load}


PUBLISHED = ("README.md", "build_info.json")


def _local_files(folder: Path) -> dict[str, Path]:
    out = {name: folder / name for name in PUBLISHED if (folder / name).is_file()}
    for sub in ("data", "figures"):
        for p in sorted((folder / sub).rglob("*")) if (folder / sub).is_dir() else []:
            if p.is_file():
                out[p.relative_to(folder).as_posix()] = p
    return out


def _same_content(api, repo_id: str, revision: str, folder: Path) -> bool:
    """Whether the files that would be published equal those at ``revision`` (sha256 for LFS
    files, git blob sha1 for the others)."""
    import hashlib

    from huggingface_hub.hf_api import RepoFile

    remote = {f.path: f for f in api.list_repo_tree(repo_id, revision=revision, recursive=True, repo_type="dataset")
              if isinstance(f, RepoFile) and (f.path in PUBLISHED or f.path.startswith(("data/", "figures/")))}
    local = _local_files(folder)
    if set(remote) != set(local):
        return False
    for path, p in local.items():
        data = p.read_bytes()
        f = remote[path]
        if f.lfs is not None:
            if hashlib.sha256(data).hexdigest() != f.lfs.sha256:
                return False
        elif hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() != f.blob_id:
            return False
    return True


def publisher_token(storage: str | os.PathLike, user: str = "dismai-publisher", org: str = "dismai") -> str:
    """A fresh write token for a local publishing user that is a member of ``org``."""
    from dismai_data.hub.auth import Auth

    return Auth(storage).create_token(user, "write", [org], name="publisher")


@dataclass
class BackgroundHub:
    url: str
    storage: Path
    _server: object
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve_in_background(storage: str | os.PathLike, host: str = "127.0.0.1", port: int = 0,
                        max_upload_bytes: int | None = None, mounts=()) -> BackgroundHub:
    """Start the hub in a daemon thread of this process (port 0: a free port); returns once it
    accepts connections. ``.url`` is the HF_ENDPOINT to use, ``.stop()`` shuts it down.
    ``mounts``: extensions to add (functions or ``"module:function"``, see server.create_app);
    ``dismai_data.leaderboard.routes.serve_in_background`` mounts the leaderboard."""
    import uvicorn

    from dismai_data.hub.server import create_app, listen_socket

    storage = Path(storage)
    storage.mkdir(parents=True, exist_ok=True)
    app = create_app(storage, max_upload_bytes, mounts)
    sock = listen_socket(host, port)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           h11_max_incomplete_event_size=64 * 1024 * 1024))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="dismai-hub")
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("the hub did not start")
        time.sleep(0.02)
    return BackgroundHub(f"http://{host}:{port}", storage, server, thread)
