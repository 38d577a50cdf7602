"""Reconstruction tasks (AtomBench / JARVIS-Leaderboard AtomGen): predictions keyed by
the row ids of a reference split, scored per pair.

Metrics (benchmark-definitions section 4):

* MAE of each Niggli-reduced lattice parameter a, b, c (Å), alpha, beta, gamma (°)
  over accepted pairs;
* KLD ``sum p log(p/q)`` (nats) between the histograms of the reference (P, all rows
  of the split) and the accepted predictions (Q): :data:`~.stats.KLD_BINS` equal-width
  bins spanning both, empty Q bins count as :data:`~.stats.KLD_EPSILON`;
* ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)``: match rate (``fit``) over all
  rows of the split (missing and failed predictions count as unmatched), the
  DiffCSP-style RMSE (mean normalised ``get_rms_dist`` over matched pairs) and the
  JARVIS-Leaderboard AtomGen score (mean ``get_rms_anonymous(pred, target)[0]`` over the
  pairs where it is defined, with that pair rate beside it).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from dismai_data.structure import row_to_structure

from .checks import CHECK_SETTINGS, absurd_lattice_reason, min_distance
from .result import Metric
from .sources import EvaluationInputError, PredictionSet, Reference
from .stats import (BOOTSTRAP_REPS, BOOTSTRAP_SEED, KLD_BINS, KLD_EPSILON, bootstrap_mean, bootstrap_stat,
                    histogram_edges, kld)

PARAMS = ("a", "b", "c", "alpha", "beta", "gamma")
UNITS = {"a": "A", "b": "A", "c": "A", "alpha": "deg", "beta": "deg", "gamma": "deg"}
MATCHER_KWARGS = {"stol": 0.5, "angle_tol": 10, "ltol": 0.3}

#: dataset name -> (default test split, training split)
RECONSTRUCTION_TASKS = {
    "jarvis-supercon-3d": "jarvis-supercon-3d",
    "alexandria-ds-ab": "alexandria-ds-ab",
    "perov-5": "perov-5",
    "carbon-24": "carbon-24",
}


def niggli_parameters(lattice) -> tuple[float, ...]:
    """a, b, c, alpha, beta, gamma of the Niggli-reduced cell (pymatgen)."""
    from pymatgen.core import Lattice

    lat = Lattice(np.asarray(lattice, dtype=float)).get_niggli_reduced_lattice()
    return tuple(float(x) for x in lat.parameters)


def match_pair(pair) -> dict:
    """StructureMatcher decisions for one (prediction, target) pair of Structures."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    pred, target = pair
    sm = StructureMatcher(**MATCHER_KWARGS)
    out: dict[str, Any] = {"match": False, "rms_dist": None, "max_dist": None, "rms_anonymous": None,
                           "match_error": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["match"] = bool(sm.fit(pred, target))
            rms = sm.get_rms_dist(pred, target)
            if rms is not None:
                out["rms_dist"], out["max_dist"] = float(rms[0]), float(rms[1])
            anon = sm.get_rms_anonymous(pred, target)
            if anon is not None and anon[0] is not None:
                out["rms_anonymous"] = float(anon[0])
    except Exception as exc:  # the matcher failing on a pathological cell: unmatched, with the reason
        out["match"] = False
        out["match_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _metric(stat_tuple, n, unit="", description="") -> Metric:
    v, lo, hi = stat_tuple
    return Metric(value=v, error_low=lo, error_high=hi, n=n, unit=unit, description=description)


def evaluate_reconstruction(preds: PredictionSet, ref: Reference, *, workers: int = 1, scheduler=None,
                            kld_bins: int = KLD_BINS) -> dict:
    """Score ``preds`` against ``ref`` row by row. Returns a dict with ``metrics``,
    ``table`` (per-row records), ``counts`` pieces, ``settings`` and ``figure`` data."""
    ref_ids = [str(r["id"]) for r in ref.rows]
    ref_by_id = {str(r["id"]): r for r in ref.rows}
    pred_by_id = {it.id: it for it in preds.items}
    unknown = [i for i in pred_by_id if i not in ref_by_id]
    if unknown:
        raise EvaluationInputError(
            f"{len(unknown)} of {len(pred_by_id)} prediction ids are not in split {ref.split!r} of {ref.id} "
            f"(first: {unknown[:3]}); predictions must be keyed by the reference row ids", source=preds.source,
            field="id")

    table: list[dict] = []
    pairs, pair_rows = [], []
    target_params = np.full((len(ref_ids), 6), np.nan)
    pred_params = np.full((len(ref_ids), 6), np.nan)
    for k, rid in enumerate(ref_ids):
        tgt_row = ref_by_id[rid]
        target = row_to_structure(tgt_row)
        target_params[k] = niggli_parameters(target.lattice.matrix)
        rec: dict[str, Any] = {"id": rid, "status": "failed", "reason": None,
                               "formula_target": target.composition.formula,
                               "num_atoms_target": len(target), "formula_pred": None, "num_atoms_pred": None}
        item = pred_by_id.get(rid)
        reason = None
        pred = None
        if item is None:
            reason = "missing: no prediction for this id"
        elif not item.ok:
            reason = item.reason
        else:
            row = item.row
            rec["formula_pred"] = row["formula"]
            rec["num_atoms_pred"] = row["num_atoms"]
            reason = absurd_lattice_reason(row)
            if reason is None and row["num_atoms"] != len(target):
                reason = f"num_atoms: wrong atom count {row['num_atoms']} (target has {len(target)})"
            if reason is None and row["reduced_formula"] != target.composition.reduced_formula:
                reason = (f"species: wrong composition {row['reduced_formula']} (target "
                          f"{target.composition.reduced_formula})")
            if reason is None:
                try:
                    pred = row_to_structure(row)
                    pred_params[k] = niggli_parameters(pred.lattice.matrix)
                except Exception as exc:
                    reason = f"lattice: Niggli reduction failed ({type(exc).__name__}: {exc})"
                    pred = None
        if reason is None:
            rec["status"] = "accepted"
            rec["min_distance"] = min_distance(pred)
            pairs.append((pred, target))
            pair_rows.append(k)
        else:
            rec["reason"] = reason
        for j, p in enumerate(PARAMS):
            rec[f"{p}_target"] = float(target_params[k, j])
            rec[f"{p}_pred"] = None if np.isnan(pred_params[k, j]) else float(pred_params[k, j])
            rec[f"{p}_abs_err"] = (None if np.isnan(pred_params[k, j])
                                   else float(abs(pred_params[k, j] - target_params[k, j])))
        table.append(rec)

    parallel_results: list[dict] = []
    if pairs:
        from .parallel import parallel_map

        parallel_results = parallel_map(match_pair, pairs, workers=workers, scheduler=scheduler,
                                        desc="StructureMatcher pairs")
    for k, res in zip(pair_rows, parallel_results):
        table[k].update(res)
    for rec in table:
        rec.setdefault("match", False)
        for key in ("rms_dist", "max_dist", "rms_anonymous", "match_error", "min_distance"):
            rec.setdefault(key, None)

    n_ref = len(ref_ids)
    acc = np.array(pair_rows, dtype=int)
    metrics: dict[str, Metric] = {}
    match_vec = np.array([1.0 if rec["match"] else 0.0 for rec in table])
    metrics["match_rate"] = _metric(bootstrap_mean(match_vec), n_ref, "",
                                    "fraction of reference rows whose prediction StructureMatcher.fit matches "
                                    "(missing/failed predictions count as unmatched)")
    rms = np.array([rec["rms_dist"] for rec in table if rec["match"] and rec["rms_dist"] is not None], float)
    metrics["rmse"] = _metric(bootstrap_mean(rms), len(rms), "(V/N)^(1/3)",
                              "DiffCSP RMSE: mean normalised get_rms_dist(pred, target)[0] over matched pairs")
    anon = np.array([rec["rms_anonymous"] for rec in table if rec["rms_anonymous"] is not None], float)
    metrics["atomgen_score"] = _metric(bootstrap_mean(anon), len(anon), "(V/N)^(1/3)",
                                       "JARVIS-Leaderboard AtomGen: mean get_rms_anonymous(pred, target)[0] over "
                                       "pairs where it is defined (others skipped)")
    anon_vec = np.array([1.0 if rec["rms_anonymous"] is not None else 0.0 for rec in table])
    metrics["atomgen_pair_rate"] = _metric(bootstrap_mean(anon_vec), n_ref, "",
                                           "fraction of reference rows entering atomgen_score")
    edges = {}
    for j, p in enumerate(PARAMS):
        errs = np.abs(pred_params[acc, j] - target_params[acc, j]) if acc.size else np.array([])
        metrics[f"mae_{p}"] = _metric(bootstrap_mean(errs), len(errs), UNITS[p],
                                      f"mean |{p}_pred - {p}_target| of Niggli-reduced cells over accepted pairs")
        ref_vals = target_params[:, j]
        pred_vals = pred_params[acc, j]
        e = histogram_edges(ref_vals, pred_vals, bins=kld_bins)
        edges[p] = e
        metrics[f"kld_{p}"] = _metric(
            bootstrap_stat(len(pred_vals), lambda idx, pv=pred_vals, rv=ref_vals, e=e: kld(rv, pv[idx], e)),
            len(pred_vals), "nats",
            f"KLD(P=reference || Q=predictions) of Niggli {p} histograms; bootstrap resamples the predictions")

    return {
        "metrics": metrics,
        "table": table,
        "n_reference": n_ref,
        "settings": {
            "structure_matcher": dict(MATCHER_KWARGS, primitive_cell=True, scale=True, attempt_supercell=False),
            "match_argument_order": "(prediction, target)",
            "niggli": "pymatgen Lattice.get_niggli_reduced_lattice (tol 1e-5), both prediction and target",
            "kld": {"bins": kld_bins, "binning": "equal-width over [min, max] of reference and accepted "
                                                 "predicted values, per parameter",
                    "epsilon": KLD_EPSILON, "epsilon_rule": "q = max(q, epsilon) in bins where p > 0",
                    "units": "nats"},
            "bootstrap": {"repetitions": BOOTSTRAP_REPS, "seed": BOOTSTRAP_SEED,
                          "generator": "numpy.random.default_rng(7), fresh per metric",
                          "interval": "95 % pivotal: error_low = p97.5 - stat, error_high = stat - p2.5"},
            "row_checks": dict(CHECK_SETTINGS, composition="reduced formula and atom count must equal the "
                                                           "target's"),
        },
        "figure": {"target": target_params, "pred": pred_params[acc] if acc.size else np.zeros((0, 6)),
                   "edges": edges, "kld": {p: metrics[f"kld_{p}"].value for p in PARAMS}},
    }
