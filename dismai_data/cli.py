"""The ``dismai`` command line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from dismai_data import __version__, mainjob
from dismai_data.paths import default_home

app = typer.Typer(
    help="dismai-data: benchmark datasets, hub, baselines and evaluation for generative models of materials.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _builder_names() -> list[str]:
    from dismai_data.builders import BUILDERS

    return sorted(BUILDERS)


def _parse_params(values: list[str]) -> dict:
    params = {}
    for item in values or []:
        if "=" not in item:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params[key.replace("-", "_")] = value
    return params


@app.command(help="Build one dataset into DIR: parquet shards under data/, README.md card and figures.\n\n"
                  "NAME is one of: " + ", ".join(sorted(__import__("dismai_data.builders", fromlist=["BUILDERS"])
                                                       .BUILDERS)))
def build(
    name: str = typer.Argument(..., help="Dataset to build (see the list above)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (replaced atomically)."),
    set_: list[str] = typer.Option([], "--set", help="Builder parameter KEY=VALUE (repeatable); see "
                                                     "`dismai builders`."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Skip the PNG figures."),
):
    from dismai_data.build import summarize
    from dismai_data.builders import BUILDERS, run_builder
    from dismai_data.builders.write import write_dataset

    if name not in BUILDERS:
        typer.echo(f"error: unknown dataset {name!r}; known: {', '.join(sorted(BUILDERS))}", err=True)
        raise typer.Exit(2)
    t0 = time.perf_counter()
    result = run_builder(name, **_parse_params(set_))
    write_dataset(result, out, figures=not no_figures)
    summary = summarize(out)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    typer.echo(json.dumps(summary, indent=1))


@app.command(help="List the dataset builders with their parameters.")
def builders():
    from dismai_data.builders import builder_module

    for name in _builder_names():
        mod = builder_module(name)
        typer.echo(f"{name}: {getattr(mod, 'DESCRIPTION', '')}")
        for key, (default, help_) in getattr(mod, "PARAMETERS", {}).items():
            typer.echo(f"    --set {key}={default!r}  {help_}")


@app.command(help="The main job: build the default datasets, start the local hub on 127.0.0.1, publish them as "
                  "dismai/NAME tagged v{version}, print what is served and where, then keep serving (Ctrl-C stops).")
def main(
    home: Optional[Path] = typer.Option(None, "--home", help="Working folder (default: $DISMAI_HOME or the user "
                                                             "cache dir): datasets/ and hub/ live there."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild datasets even when already built."),
    port: int = typer.Option(8321, "--port", help="Hub port on 127.0.0.1 (a free one if busy)."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Keep serving after publishing."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Publish the baseline model repos "
                                   "and the relaxer, submit the baselines to the leaderboard and wait for "
                                   "their scores."),
):
    mainjob.run(home or default_home(), rebuild=rebuild, port=port, serve=serve, baselines=baselines)


@app.command(help="Publish built dataset folders to a hub as dismai/NAME, tagged v{version}. Without --endpoint, "
                  "starts the local hub of --home for the duration.")
def publish(
    folders: Optional[list[Path]] = typer.Argument(None, help="Built dataset folders (default: every folder "
                                                              "under HOME/datasets)."),
    home: Optional[Path] = typer.Option(None, "--home", help="Working folder (default: $DISMAI_HOME or the user "
                                                             "cache dir)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="A running hub's URL (e.g. "
                                                                    "http://127.0.0.1:8321); needs --token."),
    token: Optional[str] = typer.Option(None, "--token", envvar="HF_TOKEN", help="Write token for the dismai org."),
):
    from rich.console import Console

    from dismai_data.hub.publish import publisher_token

    home = home or default_home()
    console = Console()
    folders = folders or sorted(p for p in (home / "datasets").iterdir() if (p / "build_info.json").exists())
    if endpoint:
        if not token:
            raise typer.BadParameter("publishing to --endpoint needs --token (or HF_TOKEN)", param_hint="--token")
        mainjob.publish_all(folders, endpoint, token, console)
        return
    hub = mainjob.start_hub(home / "hub", 0, console)
    try:
        mainjob.publish_all(folders, hub.url, publisher_token(home / "hub"), console)
    finally:
        hub.stop()


@app.command(help="Ship a built dataset folder in the checkout: copy it to prebuilt/NAME with a SHA256SUMS of "
                  "its files, so that `dismai main` on a fresh clone publishes it without the long build. For "
                  "builds too long for the quick start (a-si, interface).")
def ship(
    folder: Path = typer.Argument(..., help="A folder written by `dismai build NAME --out FOLDER`."),
):
    from dismai_data import prebuilt

    dst = prebuilt.ship(folder)
    typer.echo(f"shipped {folder} as {dst} ({len((dst / prebuilt.SUMS).read_text().splitlines())} files)")


@app.command(help="Print the version.")
def version():
    typer.echo(__version__)


def _mount_optional(module: str, name: str, attr: str = "app") -> None:
    """Mount a command (a function) or command group (a Typer app) that lives in its
    own subpackage, if that subpackage is present."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
            raise
        return
    obj = getattr(mod, attr, None)
    if obj is None:
        return
    if isinstance(obj, typer.Typer):
        app.add_typer(obj, name=name)
    else:
        app.command(name)(obj)


_mount_optional("dismai_data.leaderboard.cli", "hub", attr="hub_app")  # the hub, serving the leaderboard
_mount_optional("dismai_data.evaluation.cli", "evaluate", attr="evaluate")
_mount_optional("dismai_data.models.cli", "train", attr="train_app")
_mount_optional("dismai_data.models.cli", "generate", attr="generate")
_mount_optional("dismai_data.leaderboard.cli", "submit", attr="submit")
_mount_optional("dismai_data.leaderboard.cli", "leaderboard", attr="app")

if __name__ == "__main__":
    app()
