"""Generic generative metrics (review 003) and structural-novelty classes (paper 001).

* validity: structural (every interatomic distance > 0.5 Å, volume > 0.1 Å^3) and
  compositional (SMACT 4 ``smact_validity``: charge neutral under some combination of
  oxidation states with the Pauling electronegativity test; pure metals / alloys
  count as valid, CDVAE's convention);
* uniqueness: fraction of generated structures not matched by an earlier one;
* novelty: fraction not matched by any training structure;
* coverage: recall (test structures matched by some generated one) and precision
  (generated structures matching some test structure);
* Wasserstein distances of the density and number-of-elements distributions
  (generated vs the reference split);
* novelty classes per crystal system: duplicate (matches a training structure),
  substitution-derived (matches a training structure of the same prototype after
  replacing its species: ``StructureMatcher.fit_anonymous``; prototype bucket =
  anonymous formula + space group; no relaxation is done between substitution and
  matching here) or unmatched.

Matching uses ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)`` (scale, primitive
cell, no supercells). Work is bucketed: ``fit`` returns False for structures whose
reduced formulas differ, so only structures of the same reduced formula are
compared (anonymous formula + space group for substitution), and within that only
structures whose reduced cells have the same number of sites (without supercells the
matcher rejects any other pair); every structure is
reduced once (the matcher's own primitive + Niggli reduction) and pairs are fitted
with ``skip_structure_reduction=True``, which gives the same decisions as plain
``fit`` (tested). The strict match itself memoises what depends only on the average
lattice of a mapping (:mod:`.cached_matcher`), and equal inputs are fitted once per
bucket; both keep plain ``fit``'s decisions (tested on Perov-5, Carbon-24 and
JARVIS rows).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dismai_data.structure import row_to_structure

from .checks import structurally_valid
from .result import Metric
from .stats import bootstrap_mean, bootstrap_stat, wasserstein

MATCHER_KWARGS = {"stol": 0.5, "angle_tol": 10, "ltol": 0.3}


def matcher():
    """The benchmark's matcher (``MATCHER_KWARGS``), with the cached strict match
    (:class:`.cached_matcher.CachedStructureMatcher`)."""
    from .cached_matcher import CachedStructureMatcher

    return CachedStructureMatcher(**MATCHER_KWARGS)


def plain_matcher():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(**MATCHER_KWARGS)


def reduce_for_matching(structure):
    """The matcher's own primitive + Niggli reduction (what ``fit`` does to each input)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return StructureMatcher._get_reduced_structure(structure, True, True)


def fits(sm, a, b) -> bool:
    """``sm.fit`` of two reduced structures (:func:`reduce_for_matching`); False where the matcher fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(sm.fit(a, b, skip_structure_reduction=True))
    except Exception:
        return False


def fits_anonymous(sm, a, b) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(sm.fit_anonymous(a, b, skip_structure_reduction=True))
    except Exception:
        return False


@lru_cache(maxsize=4096)
def compositional_valid(reduced_formula: str) -> bool:
    """SMACT charge neutrality + Pauling test (alloys valid) of a reduced formula."""
    from pymatgen.core import Composition
    from smact.screening import smact_validity

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(smact_validity(Composition(reduced_formula), use_pauling_test=True, include_alloys=True))
    except Exception:
        return False


def formula_bucket_task(task) -> dict:
    """One reduced-formula bucket: uniqueness within the generated (in submission order),
    novelty against train, coverage hits against test."""
    gen, train, test = task
    sm = matcher()
    # equal inputs give equal decisions: a structure present in both reference splits (or
    # submitted twice) is fitted once per partner
    keys = {id(s): _structure_key(s) for s in (*gen, *train, *test)}
    memo: dict[tuple, bool] = {}

    def fit(a, b) -> bool:
        k = (keys[id(a)], keys[id(b)])
        if k not in memo:
            memo[k] = fits(sm, a, b)
        return memo[k]

    n = len(gen)
    unique = [True] * n
    for i in range(n):
        for j in range(i):
            if fit(gen[j], gen[i]):
                unique[i] = False
                break
    novel = [not any(fit(g, t) for t in train) for g in gen]
    precision_hit = [False] * n
    recall_hit = [False] * len(test)
    for i, g in enumerate(gen):
        for k, t in enumerate(test):
            if fit(g, t):
                precision_hit[i] = True
                recall_hit[k] = True
    return {"unique": unique, "novel": novel, "precision_hit": precision_hit, "recall_hit": recall_hit}


def _structure_key(s) -> tuple:
    """Exact identity of a structure's inputs to the matcher (species, lattice, coordinates)."""
    return (tuple(str(sp) for sp in s.species_and_occu), s.lattice.matrix.tobytes(),
            np.ascontiguousarray(s.frac_coords).tobytes())


def prototype_bucket_task(task) -> list[bool]:
    """Substitution check of novel generated structures against one prototype bucket."""
    gen, train = task
    sm = matcher()
    return [any(fits_anonymous(sm, g, t) for t in train) for g in gen]


def _reduce_row(row):
    return reduce_for_matching(row_to_structure(row))


def _anon_key(row) -> tuple:
    from pymatgen.core import Composition

    return (Composition(row["reduced_formula"]).anonymized_formula, row.get("spacegroup_number"))


class _Laps:
    """Seconds spent in each stage, rounded to 0.01 s (the result's ``timings_s``)."""

    def __init__(self):
        import time

        self._clock = time.perf_counter
        self.timings: dict[str, float] = {}
        self._t = self._clock()

    def lap(self, name: str) -> None:
        now = self._clock()
        self.timings[name] = round(now - self._t, 2)
        self._t = now


class _Reduced:
    """Matcher-reduced structures of the generated, train and test rows (index -> structure),
    each reduced once, spread over the workers."""

    def __init__(self, gen_rows, train_rows, test_rows, workers, scheduler):
        self.rows = {"gen": gen_rows, "train": train_rows, "test": test_rows}
        self.cache: dict[str, dict[int, Any]] = {"gen": {}, "train": {}, "test": {}}
        self.workers, self.scheduler = workers, scheduler

    def ensure(self, which: str, idxs, desc: str) -> None:
        from .parallel import parallel_map

        cache, rows = self.cache[which], self.rows[which]
        todo = [i for i in idxs if i not in cache]
        for i, s in zip(todo, parallel_map(_reduce_row, [rows[i] for i in todo], workers=self.workers,
                                           scheduler=self.scheduler, desc=desc)):
            cache[i] = s


def _formula_buckets(gen_rows, train_rows, test_rows) -> dict[str, dict[str, list[int]]]:
    """Row indices per reduced formula of the generated rows, where a comparison happens (> 1 row)."""
    by_formula: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"gen": [], "train": [], "test": []})
    for i, r in enumerate(gen_rows):
        by_formula[r["reduced_formula"]]["gen"].append(i)
    for i, r in enumerate(train_rows):
        if r["reduced_formula"] in by_formula:
            by_formula[r["reduced_formula"]]["train"].append(i)
    for i, r in enumerate(test_rows):
        if r["reduced_formula"] in by_formula:
            by_formula[r["reduced_formula"]]["test"].append(i)
    return {f: b for f, b in by_formula.items() if len(b["gen"]) + len(b["train"]) + len(b["test"]) > 1}


def _match_formula_buckets(by_formula, red: _Reduced, n: int, n_test: int, laps: _Laps):
    """Uniqueness, novelty and coverage hits by matching within (reduced formula, number of sites of
    the reduced cell) buckets. Returns (unique, novel, precision_hit, recall_hit) boolean arrays."""
    from .parallel import parallel_map

    red.ensure("gen", [i for b in by_formula.values() for i in b["gen"]], "reducing generated")
    red.ensure("train", [i for b in by_formula.values() for i in b["train"]], "reducing train (same formulas)")
    red.ensure("test", [i for b in by_formula.values() for i in b["test"]], "reducing test (same formulas)")
    red_gen, red_train, red_test = red.cache["gen"], red.cache["train"], red.cache["test"]
    # sub-buckets by the number of sites of the reduced structure: without supercells the
    # matcher returns None when the site counts differ (StructureMatcher._strict_match), so
    # this split is exact
    buckets: dict[tuple, dict[str, list[int]]] = defaultdict(lambda: {"gen": [], "train": [], "test": []})
    for f, b in by_formula.items():
        for i in b["gen"]:
            buckets[(f, len(red_gen[i]))]["gen"].append(i)
        for i in b["train"]:
            buckets[(f, len(red_train[i]))]["train"].append(i)
        for i in b["test"]:
            buckets[(f, len(red_test[i]))]["test"].append(i)
    keys = sorted((k for k in buckets if buckets[k]["gen"]),
                  key=lambda k: -len(buckets[k]["gen"]) * (1 + len(buckets[k]["train"]) + len(buckets[k]["test"])))
    tasks = [([red_gen[i] for i in buckets[k]["gen"]], [red_train[i] for i in buckets[k]["train"]],
              [red_test[i] for i in buckets[k]["test"]]) for k in keys]
    laps.lap("reduction (formula buckets)")
    outs = parallel_map(formula_bucket_task, tasks, workers=red.workers, scheduler=red.scheduler,
                        desc="matching (formula buckets)", chunksize=1)
    unique = np.ones(n, bool)  # a structure alone in its formula bucket is unique and novel
    novel = np.ones(n, bool)
    prec = np.zeros(n, bool)
    recall = np.zeros(n_test, bool)
    for k, o in zip(keys, outs):
        b = buckets[k]
        unique[b["gen"]] = o["unique"]
        novel[b["gen"]] = o["novel"]
        prec[b["gen"]] = o["precision_hit"]
        recall[b["test"]] = o["recall_hit"]
    laps.lap("matching (formula buckets)")
    return unique, novel, prec, recall


def _substitution_hits(novel, gen_rows, train_rows, red: _Reduced) -> np.ndarray:
    """Which novel generated structures match a training structure of the same prototype (anonymous
    formula + space group, then number of reduced sites) after species substitution."""
    from .parallel import parallel_map

    substitution = np.zeros(len(gen_rows), bool)
    novel_idx = np.flatnonzero(novel)
    if not novel_idx.size:
        return substitution
    by_proto: dict[tuple, dict[str, list[int]]] = defaultdict(lambda: {"gen": [], "train": []})
    train_keys = [_anon_key(r) for r in train_rows]
    protos = set(train_keys)
    novel_idx = [int(i) for i in novel_idx if _anon_key(gen_rows[i]) in protos]
    gen_protos = {_anon_key(gen_rows[g]) for g in novel_idx}
    proto_train = [i for i, k in enumerate(train_keys) if k in gen_protos]
    red.ensure("gen", novel_idx, "reducing generated (prototypes)")
    red.ensure("train", proto_train, "reducing train (same prototypes)")
    red_gen, red_train = red.cache["gen"], red.cache["train"]
    for i in novel_idx:
        by_proto[_anon_key(gen_rows[i]) + (len(red_gen[i]),)]["gen"].append(int(i))
    for i in proto_train:
        key = train_keys[i] + (len(red_train[i]),)
        if key in by_proto:
            by_proto[key]["train"].append(i)
    pkeys = [k for k in by_proto if by_proto[k]["train"]]
    ptasks = [([red_gen[i] for i in by_proto[k]["gen"]], [red_train[i] for i in by_proto[k]["train"]])
              for k in pkeys]
    pouts = parallel_map(prototype_bucket_task, ptasks, workers=red.workers, scheduler=red.scheduler,
                         desc="substitution matching (prototype buckets)", chunksize=1)
    for k, o in zip(pkeys, pouts):
        substitution[by_proto[k]["gen"]] = o
    return substitution


def _novelty_classes(novel, substitution, systems, novelty_classes: bool):
    """Each structure's novelty class, and the class counts per crystal system."""
    classes = np.where(~novel, "duplicate", np.where(substitution, "substitution-derived", "unmatched"))
    if not novelty_classes:
        classes = np.where(~novel, "duplicate", "novel (classes not computed)")
    class_names = (("duplicate", "substitution-derived", "unmatched") if novelty_classes
                   else ("duplicate", "novel (classes not computed)"))
    per_system: dict[str, dict[str, int]] = defaultdict(lambda: {c: 0 for c in class_names})
    for cs, cl in zip(systems, classes):
        per_system[cs][str(cl)] += 1
    return classes, per_system


def _metric(t, n_, desc, unit=""):
    """A Metric from a bootstrap ``(value, low, high)``."""
    return Metric(value=t[0], error_low=t[1], error_high=t[2], n=n_, unit=unit, description=desc)


def _metric_values(v: dict, n: int, n_test: int, novelty_classes: bool) -> dict[str, Metric]:
    """The generic metrics with bootstrap intervals from the per-structure values ``v``."""
    m = _metric
    dens_gen, dens_ref, nel_gen, nel_ref = v["dens_gen"], v["dens_ref"], v["nel_gen"], v["nel_ref"]
    classes = v["classes"]
    metrics = {
        "validity_structural": m(bootstrap_mean(v["valid_struct"]), n,
                                 "fraction of accepted structures with all distances > 0.5 A and volume > 0.1 A^3"),
        "validity_compositional": m(bootstrap_mean(v["valid_comp"]), n,
                                    "fraction charge-neutral by SMACT smact_validity (Pauling test, alloys valid)"),
        "validity": m(bootstrap_mean(v["valid_struct"] * v["valid_comp"]), n, "structurally and compositionally valid"),
        "uniqueness": m(bootstrap_mean(v["unique"].astype(float)), n,
                        "fraction not matched by an earlier structure of the same submission"),
        "novelty": m(bootstrap_mean(v["novel"].astype(float)), n, "fraction not matched by any training structure"),
        "coverage_recall": m(bootstrap_mean(v["recall"].astype(float)), n_test,
                             "fraction of reference-split structures matched by some accepted structure "
                             "(bootstrap over the reference split)"),
        "coverage_precision": m(bootstrap_mean(v["prec"].astype(float)), n,
                                "fraction of accepted structures matching some reference-split structure"),
        "wasserstein_density": m(bootstrap_stat(n, lambda i: wasserstein(dens_gen[i], dens_ref)), n,
                                 "1-D Wasserstein distance of densities, accepted vs reference split", "g/cm^3"),
        "wasserstein_nelements": m(bootstrap_stat(n, lambda i: wasserstein(nel_gen[i], nel_ref)), n,
                                   "1-D Wasserstein distance of the number of elements, accepted vs reference "
                                   "split"),
        "novelty_class_duplicate": m(bootstrap_mean((classes == "duplicate").astype(float)), n,
                                     "fraction matching a training structure (paper 001 class a)"),
        "novelty_class_substitution": m(bootstrap_mean((classes == "substitution-derived").astype(float)), n,
                                        "fraction matching a training structure of the same prototype after "
                                        "species substitution, without relaxation (class b)"),
        "novelty_class_unmatched": m(bootstrap_mean((classes == "unmatched").astype(float)), n,
                                     "fraction neither duplicate nor substitution-derived (class c)"),
    }
    if not novelty_classes:
        del metrics["novelty_class_substitution"], metrics["novelty_class_unmatched"]
    return metrics


def _figures(outdir: Path, label: str, per_system, dens_gen, dens_ref, w_density: float) -> dict[str, str]:
    from .figures import grouped_bars, overlay_histograms

    fig = outdir / "figures"
    fig.mkdir(parents=True, exist_ok=True)
    files = {}
    files["figure_novelty_classes"] = str(grouped_bars(
        {k: dict(v) for k, v in sorted(per_system.items())}, fig / "novelty_classes.png",
        f"{label}: structural novelty classes per crystal system", "structures"))
    files["figure_density"] = str(overlay_histograms(
        {"generated": dens_gen, "reference": dens_ref}, fig / "density.png", f"{label}: density",
        "density (g/cm³)", note=f"W1 = {w_density:.4g}"))
    return files


def _settings(novelty_classes: bool, timings: dict) -> dict:
    return {"structure_matcher": dict(MATCHER_KWARGS, primitive_cell=True, scale=True, attempt_supercell=False),
            "bucketing": "reduced formula (fit), anonymous formula + space group (fit_anonymous); "
                         "then number of sites of the matcher-reduced cell",
            "compositional_validity": "smact 4.0.2 smact_validity(use_pauling_test=True, include_alloys=True)",
            "substitution_relaxation": "none (structures matched as submitted, scale=True)",
            "novelty_classes": novelty_classes,
            "denominator": "accepted structures",
            "timings_s": timings}


def generic_metrics(gen_rows: list[dict], submitted: int, train_rows: list[dict], test_rows: list[dict], *,
                    workers: int = 1, scheduler=None, outdir: Path | None = None, label: str = "",
                    novelty_classes: bool = True) -> dict:
    """All generic metrics of the accepted generated rows. ``novelty_classes=False``
    skips the substitution stage (anonymous matching against whole prototype buckets,
    by far the most expensive part on single-prototype datasets such as Perov-5)."""
    n = len(gen_rows)
    laps = _Laps()
    gen_structs = [row_to_structure(r) for r in gen_rows]
    valid_struct = np.array([structurally_valid(s) for s in gen_structs], dtype=float)
    valid_comp = np.array([compositional_valid(r["reduced_formula"]) for r in gen_rows], dtype=float)
    # bucket by reduced formula first; reduce (the matcher's primitive + Niggli, the costly
    # part, spread over workers) only the structures of buckets where a comparison happens
    by_formula = _formula_buckets(gen_rows, train_rows, test_rows)
    laps.lap("validity")
    red = _Reduced(gen_rows, train_rows, test_rows, workers, scheduler)
    unique, novel, prec, recall = _match_formula_buckets(by_formula, red, n, len(test_rows), laps)
    # substitution classes for the novel ones
    substitution = (_substitution_hits(novel, gen_rows, train_rows, red) if novelty_classes
                    else np.zeros(n, bool))
    laps.lap("substitution (prototype buckets)")
    systems = [r.get("crystal_system") or "unknown" for r in gen_rows]
    classes, per_system = _novelty_classes(novel, substitution, systems, novelty_classes)
    v = {"valid_struct": valid_struct, "valid_comp": valid_comp, "unique": unique, "novel": novel, "prec": prec,
         "recall": recall, "classes": classes,
         "dens_gen": np.array([r["density"] for r in gen_rows], float),
         "dens_ref": np.array([r["density"] for r in test_rows], float),
         "nel_gen": np.array([r["nelements"] for r in gen_rows], float),
         "nel_ref": np.array([r["nelements"] for r in test_rows], float)}
    metrics = _metric_values(v, n, len(test_rows), novelty_classes)
    per_row = {}
    for i, r in enumerate(gen_rows):
        per_row[r["id"]] = {"valid_structural": bool(valid_struct[i]), "valid_compositional": bool(valid_comp[i]),
                            "unique": bool(unique[i]), "novel": bool(novel[i]), "novelty_class": str(classes[i]),
                            "crystal_system": systems[i], "density": float(v["dens_gen"][i]),
                            "nelements": int(v["nel_gen"][i])}
    files = {}
    if outdir is not None and n:
        files = _figures(outdir, label, per_system, v["dens_gen"], v["dens_ref"],
                         metrics["wasserstein_density"].value)
    return {
        "metrics": metrics,
        "groups": {"novelty_classes_per_crystal_system": {k: dict(c) for k, c in sorted(per_system.items())},
                   "submitted": submitted},
        "per_row": per_row,
        "settings": _settings(novelty_classes, laps.timings),
        "files": files,
    }
