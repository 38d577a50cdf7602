"""``dismai evaluate``: the command-line face of :func:`dismai_data.evaluation.evaluate`."""

from __future__ import annotations

import json
from typing import Optional

import typer

from dismai_data import tasks as _tasks


def evaluate(
    task: str = typer.Option(..., "--task", help="Task (dismai_data.tasks): " + _tasks.help_text() + "."),
    predictions: str = typer.Option(..., "--predictions", help="Predictions: parquet/arrow file or folder, "
                                                               "extxyz, CIF/POSCAR folder, JARVIS-Leaderboard "
                                                               "CSV, or hub id owner/name@revision."),
    column: Optional[str] = typer.Option(None, "--column", help="Column holding the predicted structures "
                                                                "(POSCAR/CIF strings or structure mappings; "
                                                                "CSV default: prediction)."),
    split: str = typer.Option("test", "--split", help="Reference split the predictions are scored against."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Reference dataset: folder written by "
                                                                      "`dismai build` or hub id@revision "
                                                                      "(default $DISMAI_HOME/datasets/NAME)."),
    out: Optional[str] = typer.Option(None, "--out", help="Folder for result.json, rows.parquet/csv, figures/."),
    workers: int = typer.Option(1, "--workers", help="Local worker processes."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:port)."),
    no_relax: bool = typer.Option(False, "--no-relax", help="a-si/interface: score the structures unrelaxed "
                                                          "(labelled as such); by default they are relaxed."),
    no_generic: bool = typer.Option(False, "--no-generic", help="Skip the generic metrics (validity, novelty...)."),
    no_novelty_classes: bool = typer.Option(False, "--no-novelty-classes",
                                            help="Skip the substitution stage of the novelty classes (slow on "
                                                 "single-prototype sets)."),
    relax_weights: Optional[str] = typer.Option(None, "--relax-weights", help="interface (and a-si): relax with "
                                                                              "this matgl potential folder or hub "
                                                                              "repo instead of the default M3GNet "
                                                                              "relaxer / LAMMPS potential."),
    lammps_potential: Optional[str] = typer.Option(None, "--lammps-potential",
                                                   help="a-si: LAMMPS potential (sw-vink, sw, tersoff) instead of "
                                                        "the one recorded in the reference's build_info.json."),
    alloy_cleanup: Optional[str] = typer.Option(None, "--alloy-cleanup",
                                                help="alloy: clean-up before counting: cryingan (reference "
                                                     "lattice as is, the registry's default), diffcsp (translated "
                                                     "onto the atom nearest the origin) or none (positions kept)."),
    samples: Optional[list[str]] = typer.Option(None, "--samples",
                                                help="reconstruction: another predictions source with sample 2..k "
                                                     "of every row (repeat); adds DiffCSP's best-of-k match rate "
                                                     "and RMSE."),
    relax_checkpoint: Optional[str] = typer.Option(None, "--relax-checkpoint",
                                                   help="interface: keep the M3GNet relaxations in this folder, "
                                                        "shard by shard, so a stopped run resumes (one folder "
                                                        "per set of predictions)."),
    relax_optimizer: Optional[str] = typer.Option(None, "--relax-optimizer",
                                                  help="interface: the M3GNet relaxations' optimiser: CG "
                                                       "(default: Dismai-Bench's scipy fmin_cg, accepted at fmax "
                                                       "<= 0.051 eV/A as its relax_int.py) or FIRE."),
):
    """Score predictions for a benchmark task; print the result JSON."""
    from dismai_data.errors import DismaiError

    from .api import evaluate as run

    try:
        result = run(task, predictions, column=column, split=split, reference=reference, out=out,
                     workers=workers, scheduler=scheduler, no_relax=no_relax, generic=not no_generic,
                     relax_weights=relax_weights, novelty_classes=not no_novelty_classes,
                     lammps_potential=lammps_potential, alloy_cleanup=alloy_cleanup, samples=samples,
                     relax_checkpoint=relax_checkpoint, relax_optimizer=relax_optimizer)
    except DismaiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    summary = {"task": result.task, "relaxed": result.relaxed, "counts": result.counts.model_dump(),
               "metrics": {k: v.value for k, v in result.metrics.items()}, "files": result.files}
    typer.echo(json.dumps(summary, indent=1))
