"""``evaluate()``: one entry point for every task, returning an :class:`EvaluationResult`
and (with ``out``) writing ``result.json``, the per-row table and the figures."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .result import Counts, DatasetRef, EvaluationResult
from .sources import EvaluationInputError, Reference, load_reference, read_predictions

from dismai_data import tasks as _tasks

RECONSTRUCTION_TASKS = tuple(t.name for t in _tasks.TASKS.values() if t.kind == "reconstruction")
GENERATION_DATASETS = tuple(t.dataset for t in _tasks.TASKS.values() if t.kind == "generation")
ALLOY_CONFIGS = tuple(t.config for t in _tasks.TASKS.values() if t.kind == "alloy")
DISORDER_TASKS = tuple(t.name for t in _tasks.TASKS.values() if t.kind in ("interface", "a-si"))


def known_tasks() -> list[str]:
    """Every task of the registry (:mod:`dismai_data.tasks`)."""
    return _tasks.task_names()


def parse_task(task: str) -> tuple[str, str, str | None]:
    """``(kind, dataset, config)`` of a task name (from the registry), or an error naming the field."""
    try:
        t = _tasks.get(task)
    except KeyError as exc:
        raise EvaluationInputError(exc.args[0], field="task") from None
    return t.kind, t.dataset, t.config


def _dataset_ref(ref: Reference) -> DatasetRef:
    return DatasetRef(id=ref.id, revision=ref.revision, config=ref.config, split=ref.split, source=ref.source,
                      num_rows=len(ref.rows))


def _write_table(records: list[dict], out: Path) -> dict[str, str]:
    import pandas as pd

    df = pd.DataFrame.from_records(records)
    pq_path, csv_path = out / "rows.parquet", out / "rows.csv"
    df.to_parquet(pq_path, index=False)
    df.to_csv(csv_path, index=False)
    return {"rows_parquet": str(pq_path), "rows_csv": str(csv_path)}


@dataclass
class _Run:
    """What a task's scorer needs: the task, its inputs and options, and the result's settings and
    files, which the scorer fills in the order they appear in ``result.json``."""

    task: str
    spec: Any
    kind: str
    preds: Any
    ref: Reference
    label: str
    settings: dict
    files: dict
    outdir: Path | None
    figures: bool
    workers: int
    scheduler: Any
    column: str | None = None
    split: str = "test"
    samples: list | None = None
    relax_spec: dict | None = None
    alloy_cleanup: str | None = None


@dataclass
class _Scores:
    """A scorer's result: metrics, the per-row table, the number submitted, the accepted rows
    the generic metrics are computed on, and whether those apply (reconstruction, generation)."""

    metrics: dict
    table: list[dict]
    submitted: int
    accepted_rows: list[dict] = field(default_factory=list)
    generic: bool = True


def evaluate(task: str, predictions: str | os.PathLike, *, column: str | None = None, split: str = "test",
             reference: str | os.PathLike | None = None, train_split: str = "train",
             out: str | os.PathLike | None = None, workers: int = 1, scheduler: Any = None,
             no_relax: bool = False, generic: bool = True, figures: bool = True,
             relax_weights: str | os.PathLike | None = None, novelty_classes: bool = True,
             lammps_potential: str | None = None, alloy_cleanup: str | None = None,
             samples: list[str | os.PathLike] | None = None,
             relax_checkpoint: str | os.PathLike | None = None,
             relax_optimizer: str | None = None) -> EvaluationResult:
    """Score ``predictions`` for ``task`` against the reference dataset.

    ``reference``: a folder written by ``dismai build`` (default:
    ``$DISMAI_HOME/datasets/<dataset>``) or a hub id ``owner/name@revision``.
    ``split``: the reference split the predictions are scored against (reconstruction:
    keyed by its row ids; generation: coverage). ``train_split``: for novelty and the
    fingerprint averages. ``workers``/``scheduler``: local processes / Dask address.
    a-si and interface relax the generated structures (positions only, fmax 0.05 eV/A)
    after the move-apart rule, by default: interface with the M3GNet relaxer of
    :mod:`dismai_data.physics.relax` (hub repo, packaged copy offline; ``relax_weights``: another
    matgl potential folder or hub repo); a-si with the LAMMPS potential the reference
    dataset was built with (its ``build_info.json`` ``parameters.potential``; else
    ``sw-vink``; ``lammps_potential`` overrides; ``relax_weights`` switches a-si to that
    M3GNet potential). ``no_relax=True`` scores the structures unrelaxed (labelled so).
    ``samples``: reconstruction only, further prediction sources (sample 2..k of every row,
    keyed by the same ids) for DiffCSP's best-of-k match rate and RMSE.
    ``relax_checkpoint``: interface (M3GNet) relaxations are written there shard by shard
    (:func:`dismai_data.physics.relax.relax_many`'s ``checkpoint_dir``), so a stopped scoring
    run resumes with only the rest relaxed; one folder per set of predictions.
    ``relax_optimizer``: the M3GNet relaxations' optimiser (default: the task registry's, CG for
    the interface): ``"CG"`` (Dismai-Bench's own: scipy's fmin_cg driven as its relax_int.py
    drives it, at most 1000 iterations, a structure accepted at fmax <= 0.051 eV/A as there) or
    ``"FIRE"`` (at most 1000 steps).
    ``alloy_cleanup``: the alloys' clean-up (``cryingan``, ``diffcsp`` or ``none``; default:
    the task registry's, :mod:`dismai_data.tasks`).
    """
    t0 = time.perf_counter()
    kind, dataset, config = parse_task(task)
    spec = _tasks.get(task)
    _check_options(task, kind, samples, lammps_potential)
    outdir = Path(out) if out is not None else None
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / "figures").mkdir(exist_ok=True)
    big = kind in ("alloy",) + DISORDER_TASKS
    preds = read_predictions(predictions, column=column, split=split, symmetry=not big)
    # reconstruction and generation score against the split given (default: the registry's);
    # the Dismai-Bench tasks always compare with the registry's split (train)
    ref = load_reference(reference, dataset, split if kind in ("reconstruction", "generation")
                         else spec.reference_split, config)

    relaxed = kind in DISORDER_TASKS and not no_relax
    relax_spec = _relax_spec(kind, ref, relax_weights, lammps_potential) if relaxed else None
    if relax_spec is not None and relax_spec["engine"] == "m3gnet":
        relax_spec["optimizer"] = spec.protocol.optimizer_id  # the registry's; relax_optimizer overrides
    if relax_spec is not None and relax_checkpoint is not None:
        if relax_spec["engine"] != "m3gnet":
            raise EvaluationInputError("--relax-checkpoint applies to M3GNet relaxations (interface, or a-si with "
                                       "--relax-weights); LAMMPS relaxations take minutes and are not checkpointed",
                                       source=str(relax_checkpoint), field="relax_checkpoint")
        relax_spec["checkpoint_dir"] = str(relax_checkpoint)
    if relax_optimizer is not None:
        _set_optimizer(relax_spec, relax_optimizer)
    label = f"{task} — " + ("relaxed" if relaxed else "unrelaxed") + (" (--no-relax)" if no_relax else "")
    settings: dict[str, Any] = {"workers": workers, "scheduler": str(scheduler) if scheduler else None,
                                "no_relax": no_relax,
                                "task": {"headline": spec.headline, "protocol": vars(spec.protocol),
                                         "ranking": f"ranked by {spec.headline} ({spec.headline_spec.better}) when "
                                                    f"it is defined and {spec.floor_metric} >= "
                                                    f"{spec.min_accepted_fraction:g}"}}
    run = _Run(task, spec, kind, preds, ref, label, settings, {}, outdir, figures, workers, scheduler,
               column=column, split=split, samples=samples, relax_spec=relax_spec, alloy_cleanup=alloy_cleanup)
    scores = _SCORERS[kind](run)
    groups: dict[str, Any] = {}
    train_ref = None if scores.generic else ref
    if generic and scores.generic:
        train_ref = _generic_stage(run, scores, groups, reference, dataset, train_split, novelty_classes)

    _describe_metrics(spec, scores.metrics)
    table = scores.table
    accepted = sum(r["status"] == "accepted" for r in table)
    reasons = Counter(_reason_key(r["reason"]) for r in table if r["status"] == "failed")
    submitted = scores.submitted
    counts = Counts(submitted=submitted, accepted=accepted, failed=submitted - accepted,
                    percent_failed=(100.0 - 100.0 * accepted / submitted) if submitted else 0.0,
                    failure_reasons=dict(reasons))
    files = run.files
    result = EvaluationResult(
        task=task, relaxed=relaxed, relaxation_note=_relax_note(kind, relax_spec, no_relax),
        predictions=preds.describe(), reference=_dataset_ref(ref),
        train_reference=_dataset_ref(train_ref) if train_ref is not None else None,
        counts=counts, metrics=scores.metrics, groups=groups, settings=settings, files=files)
    if outdir is not None:
        files.update(_write_table(table, outdir))
        files["result_json"] = str(outdir / "result.json")
        result.files = files
        result.seconds = round(time.perf_counter() - t0, 2)
        result.to_json(outdir / "result.json")
    result.seconds = round(time.perf_counter() - t0, 2)
    return result


def _check_options(task: str, kind: str, samples, lammps_potential: str | None) -> None:
    """Options that apply to some tasks only, and the LAMMPS potential's name."""
    if samples and kind != "reconstruction":
        raise EvaluationInputError(f"samples apply to the reconstruction tasks only, not {task!r}", field="samples")
    if lammps_potential is not None:
        from dismai_data.physics.lammps import POTENTIALS

        if kind != "a-si":
            raise EvaluationInputError(f"lammps_potential applies to the a-si task only, not {task!r}",
                                       field="lammps_potential")
        if lammps_potential not in POTENTIALS:
            raise EvaluationInputError(f"unknown LAMMPS potential {lammps_potential!r}; known: "
                                       f"{', '.join(POTENTIALS)}", field="lammps_potential")


def _relax_note(kind: str, relax_spec: dict | None, no_relax: bool) -> str:
    if kind in DISORDER_TASKS:
        note = (f"moved apart (1.5 A rule) and relaxed (positions only, fmax 0.05 eV/A) with "
                f"{_spec_text(relax_spec)}" if relax_spec is not None else "moved apart (1.5 A rule), NOT relaxed")
    elif kind == "alloy":
        note = "no relaxation (alloys are scored on the lattice, as in the paper)"
    else:
        note = "no relaxation: the reconstruction and generic metrics score structures as submitted"
    return note + (" (--no-relax given)" if no_relax else "")


def _describe_metrics(spec, metrics: dict) -> None:
    """Unit and description from the registry where the scorer left them blank."""
    for key, m in metrics.items():
        ms = spec.metric.get(key)
        if ms is not None:
            m.unit = m.unit or ms.unit
            m.description = m.description or ms.description


# --------------------------------------------------------------------------- scorers, by task kind
def _score_reconstruction(run: _Run) -> _Scores:
    """AtomBench reconstruction metrics, DiffCSP match rate / RMSE (best of k with ``samples``), the
    lattice-parameter figure."""
    from .reconstruction import diffcsp_metrics, evaluate_reconstruction

    preds, ref = run.preds, run.ref
    res = evaluate_reconstruction(preds, ref, workers=run.workers, scheduler=run.scheduler)
    metrics = res["metrics"]
    d1 = diffcsp_metrics([preds], ref, workers=run.workers, scheduler=run.scheduler)
    metrics.update(d1["metrics"])
    run.settings["diffcsp"] = d1["settings"]
    if run.samples:
        extra = [read_predictions(x, column=run.column, split=run.split, symmetry=False) for x in run.samples]
        dk = diffcsp_metrics([preds] + extra, ref, workers=run.workers, scheduler=run.scheduler)
        metrics.update(dk["metrics"])
        run.settings["diffcsp_best_of_k"] = dk["settings"]
    table = res["table"]
    run.settings.update(res["settings"])
    if run.outdir is not None and run.figures:
        from .figures import lattice_histograms

        f = res["figure"]
        p = lattice_histograms(f["target"], f["pred"], f["edges"], f["kld"],
                               run.outdir / "figures" / "lattice_parameters.png",
                               f"{run.label}: primitive + Niggli lattice parameters (AtomBench), target vs predicted")
        run.files["figure_lattice_parameters"] = str(p)
    return _Scores(metrics, table, res["n_reference"], _accepted_rows(preds, table))


def _score_generation(run: _Run) -> _Scores:
    """Generation: every readable structure with a sensible lattice is accepted; the metrics are the
    generic and CDVAE ones (:func:`_generic_stage`)."""
    from .checks import absurd_lattice_reason

    preds = run.preds
    table = [{"id": it.id, "status": "accepted" if it.ok else "failed", "reason": it.reason}
             for it in preds.items]
    for rec, it in zip(table, preds.items):
        if it.ok:
            r = absurd_lattice_reason(it.row)
            if r:
                rec.update(status="failed", reason=r)
    return _Scores({}, table, len(table), _accepted_rows(preds, table))


def _score_disorder(run: _Run) -> _Scores:
    """a-Si and interface: move apart, relax, fingerprint distances (:mod:`.disorder`)."""
    from .disorder import evaluate_disorder

    res = evaluate_disorder(run.kind, run.preds, run.ref, workers=run.workers, scheduler=run.scheduler,
                            relax=run.relax_spec, outdir=run.outdir, label=run.label, figures=run.figures)
    return _dismai_scores(run, res)


def _score_alloy(run: _Run) -> _Scores:
    """Alloys: clean-up onto the FCC lattice, cluster fingerprints, CE energies (:mod:`.alloy`)."""
    from .alloy import CLEANUPS, evaluate_alloy

    cleanup = run.alloy_cleanup or run.spec.protocol.cleanup_id
    if cleanup not in CLEANUPS:
        raise EvaluationInputError(f"unknown alloy clean-up {cleanup!r}; known: {', '.join(CLEANUPS)}",
                                   field="alloy_cleanup")
    res = evaluate_alloy(run.preds, run.ref, workers=run.workers, scheduler=run.scheduler, outdir=run.outdir,
                         label=run.label, figures=run.figures, cleanup=cleanup)
    return _dismai_scores(run, res)


def _dismai_scores(run: _Run, res: dict) -> _Scores:
    """A Dismai-Bench scorer's result: compared with the training split itself, no generic metrics."""
    run.settings.update(res["settings"])
    run.files.update(res.get("files", {}))
    return _Scores(res["metrics"], res["table"], len(res["table"]), generic=False)


_SCORERS = {"reconstruction": _score_reconstruction, "generation": _score_generation, "alloy": _score_alloy,
            "a-si": _score_disorder, "interface": _score_disorder}


def _generic_stage(run: _Run, scores: _Scores, groups: dict, reference, dataset: str, train_split: str,
                   novelty_classes: bool) -> Reference | None:
    """Generic metrics (validity, uniqueness, novelty, coverage...) against the training split, added to
    the scores and the per-row table; generation also gets the CDVAE metrics. Returns the training
    reference (None when the dataset has no training split: the generic metrics are skipped)."""
    from .generic import generic_metrics

    settings, table, metrics = run.settings, scores.table, scores.metrics
    try:
        train_ref = load_reference(reference, dataset, train_split)
    except EvaluationInputError as exc:
        settings["generic_skipped"] = f"no training split: {exc}"
        train_ref = None
    if train_ref is not None:
        g = generic_metrics(scores.accepted_rows, scores.submitted, train_ref.rows, run.ref.rows,
                            workers=run.workers, scheduler=run.scheduler,
                            outdir=run.outdir if run.figures else None, label=run.label,
                            novelty_classes=novelty_classes)
        metrics.update(g["metrics"])
        groups.update(g["groups"])
        settings["generic"] = g["settings"]
        run.files.update(g.get("files", {}))
        per_row = g["per_row"]
        for rec in table:
            if rec["id"] in per_row:
                rec.update(per_row[rec["id"]])
    if run.kind == "generation":
        from .cdvae import cdvae_metrics

        ok = {r["id"] for r in table if r["status"] == "accepted"}
        c = cdvae_metrics([it.row if it.ok and it.id in ok else None for it in run.preds.items], run.ref.rows,
                          dataset, workers=run.workers, scheduler=run.scheduler)
        metrics.update(c["metrics"])
        settings["cdvae"] = c["settings"]
    return train_ref


def _relax_spec(kind: str, ref: Reference, relax_weights, lammps_potential: str | None) -> dict:
    """How the generated structures of a disorder task are relaxed (see :func:`evaluate`)."""
    if kind == "interface" or relax_weights is not None:
        return {"engine": "m3gnet", "source": None if relax_weights is None else str(relax_weights)}
    from dismai_data.physics.lammps import POTENTIALS

    if lammps_potential is not None:
        return {"engine": "lammps", "potential": lammps_potential, "why": "given (lammps_potential)"}
    params = (ref.build_info or {}).get("parameters") or {}
    pot = params.get("potential")
    if pot in POTENTIALS and not params.get("from_files"):
        return {"engine": "lammps", "potential": pot,
                "why": "the potential the reference dataset was built with (build_info.json parameters.potential)"}
    why = ("the reference dataset was read from files (its structures were not relaxed by a LAMMPS potential here)"
           if params.get("from_files") else "the reference dataset records no LAMMPS potential"
           if pot is None else f"the reference dataset's potential {pot!r} is not a LAMMPS Si potential")
    return {"engine": "lammps", "potential": "sw-vink", "why": f"default sw-vink: {why}"}


def _set_optimizer(relax_spec: dict | None, optimizer: str) -> None:
    """``relax_spec`` relaxes with ``optimizer`` (FIRE or CG; M3GNet relaxations only)."""
    from .disorder_prepare import M3GNET_OPTIMIZERS

    name = str(optimizer).upper()
    if name not in M3GNET_OPTIMIZERS:
        raise EvaluationInputError(f"unknown relaxation optimizer {optimizer!r}; choose from "
                                   f"{', '.join(M3GNET_OPTIMIZERS)}", field="relax_optimizer")
    if relax_spec is None or relax_spec["engine"] != "m3gnet":
        raise EvaluationInputError("relax_optimizer applies to M3GNet relaxations (interface, or a-si with "
                                   "--relax-weights); this run " + ("does not relax" if relax_spec is None else
                                                                   "relaxes with LAMMPS"), field="relax_optimizer")
    relax_spec["optimizer"] = name


def _spec_text(spec: dict | None) -> str:
    if spec is None:
        return "nothing"
    if spec["engine"] == "lammps":
        return f"LAMMPS {spec['potential']} ({spec['why']})"
    text = f"the M3GNet relaxer ({_weights_label(spec['source'])})"
    if spec.get("optimizer") == "CG":
        text += ", driven by Dismai-Bench's conjugate gradient (scipy fmin_cg; accepted at fmax <= 0.051 eV/A)"
    else:
        text += ", driven by FIRE (at most 1000 steps)"
    return text


def _weights_label(source: str | None) -> str:
    """The relaxer weights as the note names them: the packaged copy by its name, not by this
    machine's path (the note goes into published cards); any other folder as given."""
    if source is None:
        return "default: hub repo, packaged copy offline"
    from dismai_data.physics.relax.potential import WEIGHTS_NAME, local_weights_dir

    if Path(source).resolve() == local_weights_dir().resolve():
        return f"the copy of {WEIGHTS_NAME} packaged with dismai_data"
    return source


def _reason_key(reason: str | None) -> str:
    """Short class of a failure reason for the counts (the field before the colon)."""
    if not reason:
        return "unknown"
    return reason.split(":", 1)[0].strip()[:40]


def _accepted_rows(preds, table) -> list[dict]:
    ok = {r["id"] for r in table if r["status"] == "accepted"}
    return [it.row for it in preds.items if it.ok and it.id in ok]
