"""``dismai hub serve``, ``dismai hub publish`` and ``dismai hub token create``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer


def default_storage() -> Path:
    """``$DISMAI_HOME/hub``, or ``hub`` under the user's cache dir."""
    from dismai_data.paths import default_home

    return default_home() / "hub"


def serve_hub(host: str = "127.0.0.1", port: int = 8321, storage: Optional[Path] = None,
              max_upload_mb: Optional[float] = None, log_level: str = "warning", workers: int = 1,
              mounts: list[str] = ()) -> None:
    """Serve the hub in this process until it is stopped, with ``mounts`` (``module:function``)
    called on the app (in every worker process)."""
    import uvicorn

    from dismai_data.hub.server import MOUNTS_ENV, create_app, listen_socket

    storage = storage or default_storage()
    storage.mkdir(parents=True, exist_ok=True)
    limit = int(max_upload_mb * 1e6) if max_upload_mb else None
    sock = listen_socket(host, port)
    port = sock.getsockname()[1]
    typer.echo(f"dismai hub serving {storage} at http://{host}:{port}", err=True)
    typer.echo(f"HF_ENDPOINT=http://{host}:{port}", err=True)
    kw = dict(log_level=log_level, access_log=False, timeout_keep_alive=30,
              h11_max_incomplete_event_size=64 * 1024 * 1024)
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        from dismai_data.hub.storage import Storage

        Storage(storage).clean_tmp()  # once, before any worker can write
        os.environ["DISMAI_HUB_STORAGE"] = str(storage)
        os.environ[MOUNTS_ENV] = ",".join(mounts)
        if limit:
            os.environ["DISMAI_HUB_MAX_UPLOAD"] = str(limit)
        config = uvicorn.Config("dismai_data.hub.server:app_from_env", factory=True, workers=workers, **kw)
        Multiprocess(config, sockets=[sock]).run()
    else:
        server = uvicorn.Server(uvicorn.Config(create_app(storage, limit, mounts), **kw))
        server.run(sockets=[sock])


def make_app(default_mounts: tuple[str, ...] = ()) -> typer.Typer:
    """The ``dismai hub`` commands; ``serve`` mounts ``default_mounts`` unless ``--mount`` is
    given (the leaderboard's CLI builds one that mounts the leaderboard)."""
    app = typer.Typer(help="The local Hugging Face-compatible hub.", no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False)
    token_app = typer.Typer(help="Access tokens.", no_args_is_help=True)
    app.add_typer(token_app, name="token")

    @app.command(help="Serve the hub (HF_ENDPOINT=http://HOST:PORT for the clients).")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8321, "--port", help="Port to listen on (0: a free one)."),
        storage: Optional[Path] = typer.Option(None, "--storage", help="Storage folder (default: $DISMAI_HOME/hub "
                                                                        "or the user cache dir)."),
        max_upload_mb: Optional[float] = typer.Option(None, "--max-upload-mb", help="Largest accepted file, in MB."),
        log_level: str = typer.Option("warning", "--log-level"),
        workers: int = typer.Option(1, "--workers", help="Worker processes (more parallel uploads; writes to one "
                                                         "repo stay serialised by a file lock)."),
        mount: list[str] = typer.Option(list(default_mounts), "--mount",
                                        help="An extension to add, as module:function called with the app "
                                             "(repeatable), e.g. dismai_data.leaderboard.routes:mount."),
    ):
        serve_hub(host, port, storage, max_upload_mb, log_level, workers, list(mount))

    app.command(help="Publish a built dataset folder to a running hub and tag it v{version} (no commit when "
                     "unchanged).")(publish)
    token_app.command("create", help="Create an access token; prints it as the last line.")(token_create)
    return app


def publish(
    folder: Path = typer.Argument(..., help="Built dataset folder (README.md, data/, figures/, build_info.json)."),
    repo: str = typer.Option(..., "--repo", help="Target dataset repo, e.g. dismai/perov5."),
    endpoint: str = typer.Option(..., "--endpoint", help="Hub URL, e.g. http://127.0.0.1:8321."),
    token: Optional[str] = typer.Option(None, "--token", envvar="HF_TOKEN", help="Write token (or $HF_TOKEN)."),
    version: Optional[str] = typer.Option(None, "--version", help="Default: build_info.json's version."),
):
    import json

    from dismai_data.hub.publish import publish_dataset

    typer.echo(json.dumps(publish_dataset(folder, repo, version=version, endpoint=endpoint, token=token), indent=1))


def token_create(
    user: str = typer.Option(..., "--user", help="User name (also its namespace)."),
    scope: str = typer.Option("read", "--scope", help="read or write."),
    org: list[str] = typer.Option([], "--org", help="Make the user a member of this organisation (repeatable)."),
    storage: Optional[Path] = typer.Option(None, "--storage", help="Storage folder of the hub."),
):
    from dismai_data.hub.auth import Auth

    if scope not in ("read", "write"):
        raise typer.BadParameter("scope must be read or write", param_hint="--scope")
    storage = storage or default_storage()
    storage.mkdir(parents=True, exist_ok=True)
    token = Auth(storage).create_token(user, scope, org)
    typer.echo(f"{scope} token for {user}" + (f" (member of {', '.join(org)})" if org else "") + ":")
    typer.echo(token)


app = make_app()

if __name__ == "__main__":
    app()
