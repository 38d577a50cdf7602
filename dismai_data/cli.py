"""The ``dismai`` command line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

import typer

from dismai_data import __version__

app = typer.Typer(
    help="dismai-data: benchmark datasets, hub, baselines and evaluation for generative models of materials.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _builder_names() -> list[str]:
    from dismai_data.builders import BUILDERS

    return sorted(BUILDERS)


def default_home() -> Path:
    """The embedded default folder (datasets, hub storage): ``$DISMAI_HOME`` or the
    user's cache dir."""
    env = os.environ.get("DISMAI_HOME")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("dismai-data"))


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
    set_: list[str] = typer.Option([], "--set", help="Builder parameter KEY=VALUE (repeatable); see `dismai builders`."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Skip the PNG figures."),
):
    from dismai_data.build import summarize, write_dataset
    from dismai_data.builders import BUILDERS, run_builder

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


@app.command(help="The main job: build the default datasets into the embedded default folder and print their "
                  "summaries.")
def main(
    home: Optional[Path] = typer.Option(None, "--home", help="Working folder (default: $DISMAI_HOME or the user "
                                                             "cache dir)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild datasets even when already built."),
):
    from rich.console import Console
    from rich.table import Table

    from dismai_data.build import summarize, write_dataset
    from dismai_data.builders import DEFAULT_DATASETS, run_builder

    home = home or default_home()
    datasets_dir = home / "datasets"
    console = Console()
    console.print(f"dismai-data {__version__}: building {len(DEFAULT_DATASETS)} datasets into {datasets_dir}")
    table = Table(title="Built datasets")
    for col in ("dataset", "version", "splits (rows)", "size", "seconds", "folder"):
        table.add_column(col)
    for name in DEFAULT_DATASETS:
        out = datasets_dir / name
        t0 = time.perf_counter()
        if rebuild or not (out / "build_info.json").exists():
            console.print(f"building {name} ...")
            write_dataset(run_builder(name), out)
        s = summarize(out)
        splits = "; ".join(
            ", ".join(f"{sp} {n}" for sp, n in v.items()) if c == "default" else f"{c}: " + ", ".join(
                f"{sp} {n}" for sp, n in v.items()) for c, v in s["num_rows"].items())
        table.add_row(name, s["version"], splits, f"{s['bytes'] / 1e6:.1f} MB", f"{time.perf_counter() - t0:.1f}",
                      s["path"])
    console.print(table)
    console.print('Load one with: datasets.load_dataset("parquet", data_dir="'
                  f'{datasets_dir / DEFAULT_DATASETS[0] / "data"}")')


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
        if exc.name != module:
            raise
        return
    obj = getattr(mod, attr)
    if isinstance(obj, typer.Typer):
        app.add_typer(obj, name=name)
    else:
        app.command(name)(obj)


_mount_optional("dismai_data.hub.cli", "hub")
_mount_optional("dismai_data.evaluation.cli", "evaluate", attr="evaluate")

if __name__ == "__main__":
    app()
