"""Reconstruction tasks (CSP; AtomBench; JARVIS-Leaderboard AtomGen): predictions keyed by
the row ids of a reference split, scored per pair. Targets are always the reference
split's own rows, never a target column of the predictions.

Three families, each as its reference computes it (benchmark-definitions section 4):

* CSP (DiffCSP/CDVAE style): ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)``.
  ``match_rate``: ``fit`` over every row of the split; a row counts only when its
  prediction has the target's composition and atom count and a sane cell (otherwise it
  is failed, with the reason). ``rmse``: mean normalised ``get_rms_dist(pred, target)[0]``
  over matched pairs.
* JARVIS-Leaderboard AtomGen (atomgptlab/jarvis_leaderboard ``jarvis_leaderboard/rebuild.py``,
  ``get_metric_value``): ``atomgen_score`` = mean ``get_rms_anonymous(pred, target)[0]``
  over every pair where it is not None, whatever the predicted composition (the CSP
  checks do not apply; the leaderboard prints it rounded to 4 digits), and
  ``atomgen_pair_rate`` beside it.
* AtomBench (atomgptlab/atombench_inverse ``scripts/plot_error_distribution.py``): both
  structures go through ``get_primitive_structure()`` then Niggli reduction
  (:func:`atombench_reduce`); every pair where both reductions succeed is used, whatever
  its composition. ``mae_<p>``: mean |pred - target| of each lattice parameter;
  ``kld_<p>``: ``scipy.stats.entropy(target / sum, prediction / sum)`` of the paired
  per-material vectors (nats; no bins, no epsilon); ``atombench_match_rate``: pairs with
  ``get_rms_dist(reduced pred, reduced target)`` not None over all used pairs;
  ``atombench_rmse``: mean of that (already (V/N)^(1/3)-normalised) RMS divided again by
  the reduced target's ``V^(1/3)``, as the code does (it prints both rounded to 6
  decimals). The paper's text describes a histogram KLD; that variant is reported as
  ``kld_histogram_<p>`` (50 equal-width bins over the split's targets and the accepted
  predictions' Niggli parameters without the primitive step, empty bins 1e-10).

``wrong_composition_fraction``: rows whose parsed prediction has another composition or
atom count than the target, over all rows of the split (reported as its own figure).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from dismai_data import tasks as _tasks
from dismai_data.structure import row_to_structure

from .checks import CHECK_SETTINGS, absurd_lattice_reason, min_distance
from .result import Metric
from .sources import EvaluationInputError, PredictionSet, Reference
from .stats import (BOOTSTRAP_REPS, BOOTSTRAP_SEED, KLD_BINS, KLD_EPSILON, bootstrap_mean, bootstrap_stat,
                    histogram_edges, kld)

PARAMS = ("a", "b", "c", "alpha", "beta", "gamma")
UNITS = {"a": "A", "b": "A", "c": "A", "alpha": "deg", "beta": "deg", "gamma": "deg"}
MATCHER_KWARGS = {"stol": 0.5, "angle_tol": 10, "ltol": 0.3}

#: reconstruction task name -> its dataset (from the task registry, :mod:`dismai_data.tasks`)
RECONSTRUCTION_TASKS = {t.name: t.dataset for t in _tasks.TASKS.values() if t.kind == "reconstruction"}


def niggli_parameters(lattice) -> tuple[float, ...]:
    """a, b, c, alpha, beta, gamma of the Niggli-reduced cell (pymatgen), no primitive step."""
    from pymatgen.core import Lattice

    lat = Lattice(np.asarray(lattice, dtype=float)).get_niggli_reduced_lattice()
    return tuple(float(x) for x in lat.parameters)


def atombench_reduce(structure):
    """``get_primitive_structure()`` then ``get_reduced_structure(reduction_algo="niggli")``
    (AtomBench ``reduced_structure_from_poscar_text``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return structure.get_primitive_structure().get_reduced_structure(reduction_algo="niggli")


def entropy_kld(target: np.ndarray, pred: np.ndarray) -> float:
    """AtomBench's ``kl_divergence(target, prediction)``: ``scipy.stats.entropy`` of the two
    vectors each divided by its sum (nats)."""
    from scipy import stats

    p = np.asarray(target, dtype=np.float64)
    q = np.asarray(pred, dtype=np.float64)
    if p.size == 0:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.entropy(p / np.sum(p), q / np.sum(q)))


def match_pair(task) -> dict:
    """Matcher results of one (prediction, target, csp) triple of Structures: the CSP ``fit``
    and ``get_rms_dist`` (only when ``csp``), the AtomGen ``get_rms_anonymous`` and the
    AtomBench reduction, lattice parameters and ``get_rms_dist`` of the reduced pair."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    pred, target, csp = task
    sm = StructureMatcher(**MATCHER_KWARGS)
    out: dict[str, Any] = {"match": False, "rms_dist": None, "max_dist": None, "rms_anonymous": None,
                           "match_error": None, "atombench_used": False, "atombench_match": False,
                           "atombench_rms": None, "atombench_target": None, "atombench_pred": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if csp:
            try:
                out["match"] = bool(sm.fit(pred, target))
                rms = sm.get_rms_dist(pred, target)
                if rms is not None:
                    out["rms_dist"], out["max_dist"] = float(rms[0]), float(rms[1])
            except Exception as exc:  # the matcher failing on a pathological cell: unmatched, with the reason
                out["match"] = False
                out["match_error"] = f"{type(exc).__name__}: {exc}"
        try:  # rebuild.py: an exception skips the pair
            anon = sm.get_rms_anonymous(pred, target)
            if anon is not None and anon[0] is not None:
                out["rms_anonymous"] = float(anon[0])
        except Exception as exc:
            out["match_error"] = out["match_error"] or f"get_rms_anonymous: {type(exc).__name__}: {exc}"
        try:  # plot_error_distribution.py: a pair that does not reduce is left out
            rt, rp = atombench_reduce(target), atombench_reduce(pred)
            out["atombench_target"] = tuple(float(x) for x in (*rt.lattice.abc, *rt.lattice.angles))
            out["atombench_pred"] = tuple(float(x) for x in (*rp.lattice.abc, *rp.lattice.angles))
            out["atombench_used"] = True
        except Exception:
            return out
        try:
            rms = sm.get_rms_dist(rp, rt)
            if rms is not None:
                vol = float(rt.lattice.volume)
                if np.isfinite(vol) and vol > 0:
                    scale = float(np.cbrt(vol))
                    if np.isfinite(scale) and scale > 0:
                        out["atombench_rms"] = float(rms[0]) / scale
                        out["atombench_match"] = True
        except Exception:
            pass
    return out


def _diffcsp_task(task):
    """``(valid, rms)`` of one DiffCSP pair: ``process_one`` of ``RecEval``/``RecEvalBatch``
    (jiaor17/DiffCSP ``scripts/compute_metrics.py``): no score unless valid, else
    ``get_rms_dist(pred, gt)[0]`` or None (an exception: None)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from .cdvae import crystal_validity

    pred_row, gt_row, need_gt_valid = task
    if pred_row is None or not crystal_validity(pred_row):
        return None
    if need_gt_valid and not crystal_validity(gt_row):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rms = StructureMatcher(**MATCHER_KWARGS).get_rms_dist(row_to_structure(pred_row),
                                                                   row_to_structure(gt_row))
        return None if rms is None else float(rms[0])
    except Exception:
        return None


def diffcsp_metrics(samples: list[PredictionSet], ref: Reference, *, workers: int = 1, scheduler=None) -> dict:
    """DiffCSP reconstruction (jiaor17/DiffCSP ``scripts/compute_metrics.py``): with one sample,
    ``RecEval`` (a pair counts when prediction and target are both CDVAE-valid and
    ``get_rms_dist`` is not None); with k samples per row, ``RecEvalBatch`` (each sample's own
    validity, the smallest RMS of the k kept). Match rate over every reference row, RMSE over
    the matched ones. A missing or unreadable prediction is an unmatched sample."""
    from .parallel import parallel_map

    gts = ref.rows
    k = len(samples)
    tasks = []
    for ps in samples:
        by_id = {it.id: it for it in ps.items}
        for g in gts:
            it = by_id.get(str(g["id"]))
            tasks.append((it.row if it is not None and it.ok else None, g, k == 1))
    rms = parallel_map(_diffcsp_task, tasks, workers=workers, scheduler=scheduler, desc="DiffCSP pairs")
    n = len(gts)
    best = []
    for i in range(n):
        vals = [rms[j * n + i] for j in range(k) if rms[j * n + i] is not None]
        best.append(min(vals) if vals else None)
    matched = np.array([b is not None for b in best], float)
    vals = np.array([b for b in best if b is not None], float)
    suffix = "" if k == 1 else "_best_of_k"
    how = "one sample per row" if k == 1 else f"best of k = {k} samples per row"
    return {"metrics": {
        f"diffcsp_match_rate{suffix}": _metric(bootstrap_mean(matched), n, "",
                                               f"DiffCSP {'RecEval' if k == 1 else 'RecEvalBatch'} ({how}): rows "
                                               "with a CDVAE-valid prediction that get_rms_dist matches"),
        f"diffcsp_rmse{suffix}": _metric(bootstrap_mean(vals), len(vals), "(V/N)^(1/3)",
                                         f"DiffCSP ({how}): mean get_rms_dist(pred, gt)[0] over matched rows")},
        "settings": {"reference": "jiaor17/DiffCSP scripts/compute_metrics.py @ "
                                  "7121d159826efa2ba9500bf299250d96da37f146", "k": k,
                     "validity": "CDVAE Crystal.valid (structure, SMACT, CrystalNN fingerprints computable)"
                                 + ("; the target's too" if k == 1 else "")}}


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
    _check_ids(preds, ref, pred_by_id, ref_by_id)

    table: list[dict] = []
    pairs, pair_rows = [], []
    target_params = np.full((len(ref_ids), 6), np.nan)
    pred_params = np.full((len(ref_ids), 6), np.nan)
    accepted_rows: list[int] = []
    for k, rid in enumerate(ref_ids):
        rec, pred, target, reason = _row_record(k, rid, ref_by_id[rid], pred_by_id.get(rid), target_params,
                                                pred_params)
        if reason is None:
            accepted_rows.append(k)
        if pred is not None:  # AtomGen and AtomBench score every parsed pair, CSP only the accepted ones
            pairs.append((pred, target, reason is None))
            pair_rows.append(k)
        table.append(rec)
    ab_rows = _match_pairs(table, pairs, pair_rows, workers, scheduler)

    n_ref = len(ref_ids)
    metrics = _pair_metrics(table, n_ref)
    ab_metrics, ab_t, ab_p = _atombench_metrics(ab_rows, target_params, pred_params[np.array(accepted_rows, dtype=int)],
                                                kld_bins)
    metrics.update(ab_metrics)
    return {
        "metrics": metrics,
        "table": table,
        "n_reference": n_ref,
        "settings": _settings(kld_bins),
        "figure": {"target": ab_t, "pred": ab_p,
                   "edges": {p: histogram_edges(ab_t[:, j], ab_p[:, j], bins=kld_bins) for j, p in enumerate(PARAMS)},
                   "kld": {p: metrics[f"kld_{p}"].value for p in PARAMS}},
    }


def _check_ids(preds: PredictionSet, ref: Reference, pred_by_id: dict, ref_by_id: dict) -> None:
    unknown = [i for i in pred_by_id if i not in ref_by_id]
    if unknown:
        raise EvaluationInputError(
            f"{len(unknown)} of {len(pred_by_id)} prediction ids are not in split {ref.split!r} of {ref.id} "
            f"(first: {unknown[:3]}); predictions must be keyed by the reference row ids", source=preds.source,
            field="id")


def _row_record(k: int, rid: str, tgt_row: dict, item, target_params: np.ndarray, pred_params: np.ndarray):
    """The table record of reference row ``k`` and its prediction ``item`` (None: missing): the CSP
    row checks (parsed, sane cell, atom count, composition, Niggli reduction). Fills row k of
    ``target_params`` / ``pred_params``. Returns (record, parsed prediction or None, target, reason
    it failed or None)."""
    target = row_to_structure(tgt_row)
    target_params[k] = niggli_parameters(target.lattice.matrix)
    rec: dict[str, Any] = {"id": rid, "status": "failed", "reason": None,
                           "formula_target": target.composition.formula, "num_atoms_target": len(target),
                           "formula_pred": None, "num_atoms_pred": None, "wrong_composition": None}
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
        rec["wrong_composition"] = bool(row["num_atoms"] != len(target)
                                        or row["reduced_formula"] != target.composition.reduced_formula)
        try:
            pred = row_to_structure(row)
        except Exception as exc:
            reason = f"structure: {type(exc).__name__}: {exc}"
        reason = reason or absurd_lattice_reason(row)
        if reason is None and row["num_atoms"] != len(target):
            reason = f"num_atoms: wrong atom count {row['num_atoms']} (target has {len(target)})"
        if reason is None and row["reduced_formula"] != target.composition.reduced_formula:
            reason = (f"species: wrong composition {row['reduced_formula']} (target "
                      f"{target.composition.reduced_formula})")
        if reason is None:
            try:
                pred_params[k] = niggli_parameters(pred.lattice.matrix)
            except Exception as exc:
                reason = f"lattice: Niggli reduction failed ({type(exc).__name__}: {exc})"
    if reason is None:
        rec["status"] = "accepted"
        rec["min_distance"] = min_distance(pred)
    else:
        rec["reason"] = reason
    return rec, pred, target, reason


def _match_pairs(table: list[dict], pairs: list, pair_rows: list[int], workers: int, scheduler) -> list:
    """:func:`match_pair` over the parsed pairs (spread over the workers), written into the table
    (every record gets every column). Returns the (row, result) of the pairs AtomBench uses."""
    parallel_results: list[dict] = []
    if pairs:
        from .parallel import parallel_map

        parallel_results = parallel_map(match_pair, pairs, workers=workers, scheduler=scheduler,
                                        desc="StructureMatcher pairs")
    for k, res in zip(pair_rows, parallel_results):
        table[k].update({key: v for key, v in res.items() if key not in ("atombench_target", "atombench_pred")})
        for j, p in enumerate(PARAMS):
            table[k][f"{p}_target"] = None if res["atombench_target"] is None else res["atombench_target"][j]
            table[k][f"{p}_pred"] = None if res["atombench_pred"] is None else res["atombench_pred"][j]
    for rec in table:
        rec.setdefault("match", False)
        for key in ("rms_dist", "max_dist", "rms_anonymous", "match_error", "min_distance", "atombench_rms"):
            rec.setdefault(key, None)
        rec.setdefault("atombench_used", False)
        rec.setdefault("atombench_match", False)
        for p in PARAMS:
            rec.setdefault(f"{p}_target", None)
            rec.setdefault(f"{p}_pred", None)
    return [(k, res) for k, res in zip(pair_rows, parallel_results) if res["atombench_used"]]


def _pair_metrics(table: list[dict], n_ref: int) -> dict[str, Metric]:
    """CSP match rate and RMSE, AtomGen score and pair rate, wrong-composition fraction."""
    metrics: dict[str, Metric] = {}
    match_vec = np.array([1.0 if rec["match"] else 0.0 for rec in table])
    metrics["match_rate"] = _metric(bootstrap_mean(match_vec), n_ref, "",
                                    "CSP: fraction of reference rows whose prediction StructureMatcher.fit matches "
                                    "(missing, failed and wrong-composition predictions count as unmatched)")
    rms = np.array([rec["rms_dist"] for rec in table if rec["match"] and rec["rms_dist"] is not None], float)
    metrics["rmse"] = _metric(bootstrap_mean(rms), len(rms), "(V/N)^(1/3)",
                              "CSP RMSE: mean normalised get_rms_dist(pred, target)[0] over matched pairs")
    anon = np.array([rec["rms_anonymous"] for rec in table if rec["rms_anonymous"] is not None], float)
    metrics["atomgen_score"] = _metric(bootstrap_mean(anon), len(anon), "(V/N)^(1/3)",
                                       "JARVIS-Leaderboard AtomGen (rebuild.py): mean get_rms_anonymous(pred, "
                                       "target)[0] over every pair where it is defined, any composition")
    anon_vec = np.array([1.0 if rec["rms_anonymous"] is not None else 0.0 for rec in table])
    metrics["atomgen_pair_rate"] = _metric(bootstrap_mean(anon_vec), n_ref, "",
                                           "fraction of reference rows entering atomgen_score")
    wrong_vec = np.array([1.0 if rec["wrong_composition"] else 0.0 for rec in table])
    metrics["wrong_composition_fraction"] = _metric(bootstrap_mean(wrong_vec), n_ref, "",
                                                    "fraction of reference rows whose parsed prediction has another "
                                                    "composition or atom count than the target")
    return metrics


def _atombench_metrics(ab_rows: list, target_params: np.ndarray, accepted_params: np.ndarray, kld_bins: int):
    """AtomBench match rate, RMSE, per-parameter MAE and KLD of the reduced pairs, and the paper's
    histogram KLD (reference targets vs accepted predictions). Returns (metrics, target and predicted
    reduced parameters of the AtomBench pairs)."""
    metrics: dict[str, Metric] = {}
    ab_match = np.array([1.0 if res["atombench_match"] else 0.0 for _, res in ab_rows])
    metrics["atombench_match_rate"] = _metric(bootstrap_mean(ab_match), len(ab_match), "",
                                              "AtomBench code: reduced pairs (primitive, Niggli) with get_rms_dist "
                                              "not None, over every pair that parses and reduces")
    ab_rms = np.array([res["atombench_rms"] for _, res in ab_rows if res["atombench_match"]], float)
    metrics["atombench_rmse"] = _metric(bootstrap_mean(ab_rms), len(ab_rms), "(V/N)^(1/3) / V^(1/3)",
                                        "AtomBench code: mean get_rms_dist(reduced pred, reduced target)[0] divided "
                                        "again by the reduced target's V^(1/3), over matched pairs")
    ab_t = np.array([res["atombench_target"] for _, res in ab_rows], float).reshape(-1, 6)
    ab_p = np.array([res["atombench_pred"] for _, res in ab_rows], float).reshape(-1, 6)
    n_ab = len(ab_t)
    for j, p in enumerate(PARAMS):
        errs = np.abs(ab_p[:, j] - ab_t[:, j])
        metrics[f"mae_{p}"] = _metric(bootstrap_mean(errs), n_ab, UNITS[p],
                                      f"AtomBench code: mean |{p}_pred - {p}_target| after get_primitive_structure() "
                                      "and Niggli reduction, every pair that parses (any composition)")
        metrics[f"kld_{p}"] = _metric(
            bootstrap_stat(n_ab, lambda idx, j=j: entropy_kld(ab_t[idx, j], ab_p[idx, j])), n_ab, "nats",
            f"AtomBench code: scipy.stats.entropy(target, prediction) of the paired per-material {p} vectors "
            "(each divided by its sum; no bins, no epsilon); bootstrap resamples the pairs")
        ref_vals = target_params[:, j]
        pred_vals = accepted_params[:, j]
        e = histogram_edges(ref_vals, pred_vals, bins=kld_bins)
        metrics[f"kld_histogram_{p}"] = _metric(
            bootstrap_stat(len(pred_vals), lambda idx, pv=pred_vals, rv=ref_vals, e=e: kld(rv, pv[idx], e)),
            len(pred_vals), "nats",
            f"the AtomBench paper's text (not its code): KLD(P=reference || Q=predictions) of {kld_bins}-bin "
            f"histograms of Niggli {p} (no primitive step), accepted predictions; bootstrap resamples them")
    return metrics, ab_t, ab_p


def _settings(kld_bins: int) -> dict:
    return {
        "structure_matcher": dict(MATCHER_KWARGS, primitive_cell=True, scale=True, attempt_supercell=False),
        "match_argument_order": "(prediction, target)",
        "targets": "the reference split's rows (a target column in the predictions is ignored)",
        "atomgen": "jarvis_leaderboard/rebuild.py: every parsed pair, get_rms_anonymous not None",
        "atombench": "scripts/plot_error_distribution.py: get_primitive_structure() then Niggli "
                     "(get_reduced_structure), every pair where both reduce, any composition",
        "niggli": "kld_histogram: pymatgen Lattice.get_niggli_reduced_lattice (tol 1e-5), no primitive step",
        "kld_histogram": {"bins": kld_bins, "binning": "equal-width over [min, max] of reference and accepted "
                                                       "predicted values, per parameter",
                          "epsilon": KLD_EPSILON, "epsilon_rule": "q = max(q, epsilon) in bins where p > 0",
                          "units": "nats"},
        "bootstrap": {"repetitions": BOOTSTRAP_REPS, "seed": BOOTSTRAP_SEED,
                      "generator": "numpy.random.default_rng(7), fresh per metric",
                      "interval": "95 % pivotal: error_low = p97.5 - stat, error_high = stat - p2.5"},
        "row_checks": dict(CHECK_SETTINGS, composition="CSP only: reduced formula and atom count must equal "
                                                       "the target's"),
    }
