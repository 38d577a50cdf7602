"""``dismai submit`` and ``dismai leaderboard worker|show|status|rescore``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from dismai_data import tasks as _tasks

app = typer.Typer(help="The leaderboard: scoring worker, rows, submission status.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


def _storage(home: Optional[Path], storage: Optional[Path]) -> Path:
    if storage:
        return storage
    from dismai_data.paths import default_home

    return (home or default_home()) / "hub"


def submit(
    task: str = typer.Option(..., "--task", help="Task (dismai_data.tasks): " + _tasks.help_text() + "."),
    predictions: str = typer.Option(..., "--predictions", help="Predictions: parquet, extxyz, CIF/POSCAR folder, "
                                                               "JARVIS-Leaderboard CSV, or hub id@revision."),
    model_name: str = typer.Option(..., "--model-name", help="Name shown on the leaderboard."),
    model_repo: Optional[str] = typer.Option(None, "--model-repo", help="The model's repo on the hub (org/name)."),
    notes: str = typer.Option("", "--notes", help="Free text shown under the model name."),
    column: Optional[str] = typer.Option(None, "--column", help="Column of POSCAR/CIF strings (default: structure "
                                                                "columns; 'prediction' for the JARVIS CSV)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", envvar="HF_ENDPOINT", help="Hub URL."),
    token: Optional[str] = typer.Option(None, "--token", envvar="HF_TOKEN", help="Your write token."),
    wait: bool = typer.Option(False, "--wait/--no-wait", help="Wait until scored and print the row."),
    timeout: float = typer.Option(3600, "--timeout", help="With --wait: seconds to wait."),
):
    """Validate predictions against a task, upload them to the hub and queue their scoring."""
    from .client import SubmissionError, submit_predictions, wait_for

    try:
        out = submit_predictions(endpoint or "", token or "", task, predictions, model_name, model_repo, notes,
                                 column)
    except SubmissionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    if out.get("validation", {}).get("warning"):
        typer.echo(f"warning: {out['validation']['warning']}", err=True)
    if out.get("duplicate"):
        typer.echo(out.get("message", "duplicate submission"), err=True)
    else:
        typer.echo(f"submitted {out['submission_id']} ({task}, {model_name}): {out['status']}", err=True)
    typer.echo(f"predictions: {out['predictions_url']}", err=True)
    if wait:
        try:
            out = wait_for(endpoint, out["submission_id"], timeout, token=token) | {
                "duplicate": out.get("duplicate", False)}
        except (TimeoutError, SubmissionError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{out['submission_id']}: {out['status']}" + (f" ({out.get('reason')})" if out.get("reason")
                                                                  else ""), err=True)
    typer.echo(f"leaderboard: {out['leaderboard_url']}", err=True)
    typer.echo(json.dumps(out, default=str))
    if wait and out.get("status") == "failed":
        raise typer.Exit(1)


@app.command(help="Score queued submissions (the hub starts one of these itself unless "
                  "DISMAI_LEADERBOARD_WORKER=0). Needs the running hub's URL.")
def worker(
    home: Optional[Path] = typer.Option(None, "--home", help="Working folder (its hub/ is the hub storage)."),
    storage: Optional[Path] = typer.Option(None, "--storage", help="Hub storage folder (instead of --home)."),
    endpoint: str = typer.Option("http://127.0.0.1:8321", "--endpoint", envvar="HF_ENDPOINT",
                                 help="URL of the hub serving that storage."),
    once: bool = typer.Option(False, "--once", help="Stop when the queue is empty (incl. stale claims)."),
    lease: float = typer.Option(120.0, "--lease", help="Seconds without heartbeat after which a claim is stale."),
    relax: bool = typer.Option(True, "--relax/--no-relax", help="Relax a-si/interface structures with the shipped "
                                                                "M3GNet weights when matgl is installed."),
):
    import logging

    from .worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    w = Worker(_storage(home, storage), endpoint, lease_s=lease, relax=relax)
    try:
        n = w.run(once=once)
    except KeyboardInterrupt:
        w.stop()
        n = 0
    typer.echo(f"finished {n} submissions", err=True)


@app.command(help="Print the leaderboard rows (JSON lines) of a hub.")
def show(endpoint: str = typer.Option(..., "--endpoint", envvar="HF_ENDPOINT"),
         task: Optional[str] = typer.Option(None, "--task"),
         token: Optional[str] = typer.Option(None, "--token", envvar="HF_TOKEN",
                                             help="Also rows of private predictions repos this token may read.")):
    from .client import api_request

    code, out = api_request("GET", f"{endpoint.rstrip('/')}/api/leaderboard", token)
    if code != 200:
        typer.echo(f"error: {out}", err=True)
        raise typer.Exit(2)
    for r in out["rows"]:
        if task is None or r["task"] == task:
            typer.echo(json.dumps(r))


@app.command(help="Status of one submission.")
def status(submission_id: str, endpoint: str = typer.Option(..., "--endpoint", envvar="HF_ENDPOINT"),
           token: Optional[str] = typer.Option(None, "--token", envvar="HF_TOKEN",
                                               help="Needed for a submission of a private predictions repo.")):
    from .client import api_request

    code, out = api_request("GET", f"{endpoint.rstrip('/')}/api/leaderboard/submissions/{submission_id}", token)
    typer.echo(json.dumps(out))
    if code != 200:
        raise typer.Exit(2)


# Two scorings of the same file agree to rounding, not always to the bit: a metric that is a
# near-zero difference of large numbers (an RMSE of a perfect match) keeps only the rounding of
# its operands, which BLAS thread counts change. Anything beyond this is a real difference.
RESCORE_RTOL, RESCORE_ATOL = 1e-6, 1e-9


def _agree(a, b) -> bool:
    """Equal, with numbers equal to within RESCORE_RTOL / RESCORE_ATOL, through dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_agree(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_agree(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=RESCORE_RTOL, abs_tol=RESCORE_ATOL) or (a != a and b != b)
    return a == b


@app.command(help="Score a submission again (nothing is committed) and compare with its leaderboard row: "
                  "exit 0 when every number agrees (to relative 1e-6 / absolute 1e-9: rounding); "
                  "'identical' says whether they are also equal to the bit. A relaxed row scored on another "
                  "CPU (a shipped row's hardware) is compared by the 'interval' criterion instead: each "
                  "metric's value must fall in the row's bootstrap interval, counts must be equal "
                  "(relaxation trajectories depend on the CPU's floating-point kernels).")
def rescore(
    submission_id: str,
    home: Optional[Path] = typer.Option(None, "--home"),
    storage: Optional[Path] = typer.Option(None, "--storage"),
    endpoint: str = typer.Option("http://127.0.0.1:8321", "--endpoint", envvar="HF_ENDPOINT"),
    relax: Optional[bool] = typer.Option(None, "--relax/--no-relax",
                                         help="Default: as the row was scored (its 'relaxed' field)."),
):
    import subprocess
    import sys
    import tempfile

    from .queue import Queue
    from .worker import child_env, worker_token

    st = _storage(home, storage)
    q = Queue(st)
    if q.job(submission_id) is None:
        typer.echo(f"error: no submission {submission_id!r} in {st}", err=True)
        raise typer.Exit(2)
    from .client import api_request

    from .store import withheld_row

    code, cur = api_request("GET", f"{endpoint.rstrip('/')}/api/leaderboard/submissions/{submission_id}", None)
    if withheld_row(st, submission_id) is not None:  # a private predictions repo's row: not on the public API
        code, cur = 200, {"row": withheld_row(st, submission_id)}
    if code != 200 or "row" not in cur:
        typer.echo(f"error: {submission_id} has no leaderboard row yet ({cur.get('status', cur)})", err=True)
        raise typer.Exit(2)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", "dismai_data.leaderboard.score", "--job", str(q.job_path(submission_id)),
               "--endpoint", endpoint, "--out", str(out), "--work", str(Path(tmp) / "work"), "--no-commit"]
        if relax is None:  # score as the row was: an unrelaxed (e.g. shipped) row is rescored unrelaxed
            relax = cur["row"].get("relaxed") is not False
        if not relax:
            cmd.append("--no-relax")
        proc = subprocess.run(cmd, env=child_env(endpoint, worker_token(st), st), capture_output=True, text=True)
        if proc.returncode != 0:
            typer.echo(f"error: scoring failed: {proc.stderr[-2000:]}", err=True)
            raise typer.Exit(1)
        new = json.loads(out.read_text())["row"]
    from dismai_data.physics.cpu import cpu_of, hardware

    old = cur["row"]
    scored_on, here = _scored_on(old), hardware()
    interval = bool(relax and old.get("relaxed") is not False and scored_on and cpu_of(scored_on) != cpu_of(here))
    identical, diffs = _differences(old, new, interval=interval)
    typer.echo(json.dumps({"submission_id": submission_id, "identical": identical, "agree": not diffs,
                           "criterion": "interval" if interval else "rounding",
                           "scored_on": scored_on or "this hub's worker", "rescored_on": here,
                           "differences": diffs}, default=str))
    if diffs:
        raise typer.Exit(1)


#: row fields a rescore must reproduce exactly, whatever the criterion for the metrics (and the
#: evaluation version: both must be versions whose numbers for the row's task are current)
RESCORE_EXACT = ("status", "percent_failed", "n_accepted", "dataset_commit")


def _scored_on(row: dict) -> str | None:
    """The hardware a shipped row was scored on (first field of ``shipped_from``), or None for
    a row the hub's worker scored (on the machine that rescores it)."""
    return (row.get("shipped_from") or "").split("; ")[0].strip() or None


def _within(old: dict, new: dict) -> bool:
    """``new``'s value lies in ``old``'s bootstrap interval [value - error_low, value + error_high],
    with the same ``n`` and unit. A metric without an interval never does."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return False
    v, lo, hi, w = (old.get("value"), old.get("error_low"), old.get("error_high"), new.get("value"))
    if not all(isinstance(z, (int, float)) and not isinstance(z, bool) and z == z for z in (v, lo, hi, w)):
        return False
    slack = RESCORE_ATOL + RESCORE_RTOL * abs(v)
    return old.get("n") == new.get("n") and old.get("unit") == new.get("unit") and v - lo - slack <= w <= v + hi + slack


def _differences(old: dict, new: dict, *, interval: bool = False) -> tuple[bool, dict]:
    """(identical to the bit, {field: (old, new)} that disagree) between two leaderboard rows.
    ``interval``: a metric also agrees when the new value lies in the old row's bootstrap
    interval (a relaxed row rescored on another CPU: the relaxations, chaotic over hundreds of
    steps, amplify the CPU's rounding differences into different relaxed structures)."""
    from dismai_data.evaluation.result import reproduces

    from .rows import metrics_of

    a, b = metrics_of(old), metrics_of(new)
    pairs = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))}
    pairs.update({k: (old.get(k), new.get(k)) for k in RESCORE_EXACT})
    versions = (old.get("evaluation_version"), new.get("evaluation_version"))
    same_version = all(reproduces(old.get("task") or new.get("task"), v) for v in versions)
    identical = same_version and all(x == y for x, y in pairs.values())
    diffs = {k: p for k, p in pairs.items()
             if not _agree(*p) and not (interval and k in a and k in b and _within(*p))}
    if not same_version:
        diffs["evaluation_version"] = versions
    return identical, diffs


def _hub_app():
    """``dismai hub`` with the leaderboard mounted by ``serve`` (the top-level CLI mounts this
    as ``hub``; ``dismai_data.hub.cli.app`` serves the hub alone)."""
    from dismai_data.hub.cli import make_app

    from .routes import MOUNT

    return make_app(default_mounts=(MOUNT,))


hub_app = _hub_app()
