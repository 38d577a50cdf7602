"""The task registry: every benchmark task defined once.

A :class:`Task` names its dataset, config and reference split, the protocol its scores
follow (clean-up, relaxation, sample count), its metrics (unit, direction, the reference
file each reproduces) with one headline, and the ranking rule. ``evaluate()``, the
``dismai evaluate`` help, the leaderboard page and the model cards read it; nothing else
keeps a list of tasks or metric names.

Ranking rule (:func:`rank_order`): a submission is *rankable* when its headline metric is
defined (a finite number) and its accepted fraction (the task's ``floor_metric``) is at
least ``min_accepted_fraction`` (a row without counts, such as a published number entered
by hand, is not held to the floor). Rankable submissions are ordered by the headline; the
others are listed after them without a rank, so a submission without its headline (for
example 100 % failed) is never ranked above one that has it.

Ground floor of the library: imports only the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Accepted fraction below which a submission is listed without a rank. The Dismai-Bench
#: paper ranks models with up to 64.6 % failed (UniMat, interface), so the floor is low.
MIN_ACCEPTED_FRACTION = 0.1

DISMAI_BENCH = "ertekin-research-group/Dismai-Bench"
ATOMBENCH = "atomgptlab/atombench_inverse"
JARVIS_LB = "atomgptlab/jarvis_leaderboard"
CDVAE = "txie-93/cdvae"
LATTICE = ("a", "b", "c", "alpha", "beta", "gamma")
_UNIT = {"a": "A", "b": "A", "c": "A", "alpha": "deg", "beta": "deg", "gamma": "deg"}
_SYMBOL = {"a": "a", "b": "b", "c": "c", "alpha": "α", "beta": "β", "gamma": "γ"}


@dataclass(frozen=True)
class MetricSpec:
    key: str
    title: str
    better: str  # "min" | "max" | "" (reported, not ranked)
    unit: str = ""
    description: str = ""
    reference: str = ""  # repository file the number reproduces


@dataclass(frozen=True)
class Protocol:
    cleanup: str
    relaxation: str
    samples: str
    cleanup_id: str = ""  # the evaluation's option value for this clean-up (alloys: cryingan/diffcsp/none)
    optimizer_id: str = ""  # the optimiser of its M3GNet relaxations (the evaluation's option value: CG/FIRE)


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # reconstruction | generation | alloy | a-si | interface
    dataset: str
    config: str | None
    reference_split: str  # the split scores are computed against
    protocol: Protocol
    metrics: tuple[MetricSpec, ...]
    headline: str
    columns: tuple[str, ...]  # leaderboard columns, headline first
    floor_metric: str = "accepted_fraction"  # accepted fraction the ranking floor applies to
    min_accepted_fraction: float = MIN_ACCEPTED_FRACTION
    dismai_axis: bool = False  # an axis of the leaderboard's rank chart
    description: str = ""
    #: the evaluation version that last changed this task's protocol or metrics: scores from it
    #: or later equal the current evaluation's (shipped scores stay valid across other changes)
    scores_since: str = "0.2.0"

    @property
    def metric(self) -> dict[str, MetricSpec]:
        return {m.key: m for m in self.metrics}

    @property
    def headline_spec(self) -> MetricSpec:
        return self.metric[self.headline]

    @property
    def relaxes(self) -> bool:
        """Whether scoring relaxes the structures first (what ``--no-relax`` turns off)."""
        return self.protocol.relaxation != "none"


FAILED = MetricSpec("percent_failed", "% failed", "min", "%",
                    "100 - 100 * accepted / submitted (submitted: structures read; reconstruction: reference rows)")

_VAC = MetricSpec("percent_with_vacancies", "% with vacancies", "min", "%",
                  "accepted structures with at least one vacant FCC site after the clean-up",
                  f"{DISMAI_BENCH} benchmark/alloy/cluster_counts/get_alloy_metrics.py")


def _alloy_metrics() -> tuple[MetricSpec, ...]:
    count = f"{DISMAI_BENCH} benchmark/alloy/cluster_counts/utils/count.py, analyze_cluster_count.py"
    return (
        MetricSpec("d_cluster", "d_cluster", "min", "",
                   "Euclidean distance of the average 45-number cluster-probability fingerprints (generated vs "
                   "train), counts normalised per atom present and rounded to 5 decimals as the reference does",
                   count + ", get_alloy_metrics.py"),
        _VAC,
        MetricSpec("percent_wrong_composition", "% wrong composition", "", "%",
                   "readable Cr/Fe/Ni structures whose composition is not Cr51 Fe154 Ni51 (scored all the same, "
                   "as the reference does)"),
        MetricSpec("d_cluster_per_site", "d_cluster per site", "", "",
                   "variant: the project's alignment (one atom per site, > 50 unassigned left out), fingerprints "
                   "normalised per lattice site (256), not rounded; not the reference's number with vacancies"),
        MetricSpec("energy_mean", "mean CE energy", "", "eV/atom", "mean CE formation energy, accepted",
                   count),
        MetricSpec("wasserstein_energy", "W1 CE energy", "", "eV/atom",
                   "1-D Wasserstein distance of CE energies, accepted vs train"),
        FAILED,
    )


def _recon_metrics() -> tuple[MetricSpec, ...]:
    pb = f"{ATOMBENCH} scripts/plot_error_distribution.py"
    ms = [
        MetricSpec("match_rate", "match rate", "max", "",
                   "CSP (DiffCSP/CDVAE) match rate: StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3).fit over "
                   "every reference row; rows failed or with the wrong composition count as unmatched",
                   "jiaor17/DiffCSP scripts/compute_metrics.py"),
        MetricSpec("rmse", "RMSE", "min", "(V/N)^(1/3)",
                   "CSP RMSE: mean get_rms_dist(pred, target)[0] over matched pairs",
                   "jiaor17/DiffCSP scripts/compute_metrics.py"),
        MetricSpec("diffcsp_match_rate", "DiffCSP match rate", "max", "",
                   "RecEval: prediction and target CDVAE-valid and get_rms_dist not None, over every row",
                   "jiaor17/DiffCSP scripts/compute_metrics.py"),
        MetricSpec("diffcsp_rmse", "DiffCSP RMSE", "min", "(V/N)^(1/3)", "RecEval: mean RMS over matched rows",
                   "jiaor17/DiffCSP scripts/compute_metrics.py"),
        MetricSpec("diffcsp_match_rate_best_of_k", "DiffCSP match rate (k)", "max", "",
                   "RecEvalBatch with k samples per row (evaluate(samples=...)): best of the k",
                   "jiaor17/DiffCSP scripts/compute_metrics.py"),
        MetricSpec("diffcsp_rmse_best_of_k", "DiffCSP RMSE (k)", "min", "(V/N)^(1/3)",
                   "RecEvalBatch: smallest RMS of the k samples, mean over matched rows",
                   "jiaor17/DiffCSP scripts/compute_metrics.py"),
        MetricSpec("atomgen_score", "AtomGen", "min", "(V/N)^(1/3)",
                   "JARVIS-Leaderboard AtomGen: mean get_rms_anonymous(pred, target)[0] over every pair where it "
                   "is defined, whatever the predicted composition", f"{JARVIS_LB} jarvis_leaderboard/rebuild.py"),
        MetricSpec("atomgen_pair_rate", "AtomGen pairs", "max", "",
                   "fraction of reference rows entering atomgen_score", f"{JARVIS_LB} jarvis_leaderboard/rebuild.py"),
        MetricSpec("wrong_composition_fraction", "wrong composition", "min", "",
                   "fraction of reference rows whose parsed prediction has another composition or atom count"),
        MetricSpec("atombench_match_rate", "AtomBench match rate", "max", "",
                   "both reduced (primitive, then Niggli), StructureMatcher.get_rms_dist not None, over every "
                   "parsed pair", pb),
        MetricSpec("atombench_rmse", "AtomBench RMSE", "min", "(V/N)^(1/3) / V^(1/3)",
                   "mean get_rms_dist(pred, target)[0] of the reduced pair divided again by the target's V^(1/3), "
                   "as the reference code does", pb),
    ]
    for p in LATTICE:
        ms.append(MetricSpec(f"mae_{p}", f"MAE {_SYMBOL[p]}", "min", _UNIT[p],
                             f"AtomBench code: MAE of {p} after get_primitive_structure() then Niggli, every "
                             "parsed pair (any composition)", pb))
    for p in LATTICE:
        ms.append(MetricSpec(f"kld_{p}", f"KLD {_SYMBOL[p]}", "min", "nats",
                             "AtomBench code: scipy.stats.entropy(target, prediction) of the paired per-material "
                             f"{p} vectors (each divided by its sum; no bins, no epsilon), every parsed pair", pb))
    for p in LATTICE:
        ms.append(MetricSpec(f"kld_histogram_{p}", f"KLD hist {_SYMBOL[p]}", "", "nats",
                             f"the AtomBench paper's text variant (not its code): 50-bin histograms of {p}, "
                             "reference split vs accepted predictions, 1e-10 floor"))
    ms.append(FAILED)
    return tuple(ms)


def _generation_metrics() -> tuple[MetricSpec, ...]:
    return (
        MetricSpec("coverage_recall", "coverage recall", "max", "",
                   "fraction of reference-split structures matched by some accepted structure"),
        MetricSpec("coverage_precision", "coverage precision", "max", "",
                   "fraction of accepted structures matching some reference-split structure"),
        MetricSpec("validity_structural", "structural validity", "max", "", "distances > 0.5 A, volume > 0.1 A^3"),
        MetricSpec("validity_compositional", "compositional validity", "max", "", "SMACT charge neutrality"),
        MetricSpec("uniqueness", "uniqueness", "max", ""), MetricSpec("novelty", "novelty", "max", ""),
        MetricSpec("cdvae_validity_struct", "CDVAE struct. validity", "max", "",
                   "distances >= 0.5 A (padded distance matrix), volume >= 0.1 A^3", CDVAE + " scripts/eval_utils.py"),
        MetricSpec("cdvae_validity_comp", "CDVAE comp. validity", "max", "", "CDVAE's SMACT rule",
                   CDVAE + " scripts/eval_utils.py"),
        MetricSpec("cdvae_validity_all", "CDVAE validity", "max", "", "both", CDVAE + " scripts/compute_metrics.py"),
        MetricSpec("cdvae_cov_recall", "CDVAE COV-R", "max", "",
                   "CrystalNN ops + magpie fingerprints within the dataset's cutoffs (Perov-5, Carbon-24: 0.2 / 4)",
                   CDVAE + " scripts/eval_utils.py compute_cov"),
        MetricSpec("cdvae_cov_precision", "CDVAE COV-P", "max", "", "as cdvae_cov_recall, over generated",
                   CDVAE + " scripts/eval_utils.py compute_cov"),
        MetricSpec("cdvae_wdist_density", "CDVAE W1 density", "min", "g/cm^3", "valid vs reference split",
                   CDVAE + " scripts/compute_metrics.py"),
        MetricSpec("cdvae_wdist_nelements", "CDVAE W1 #elements", "min", "", "valid vs reference split",
                   CDVAE + " scripts/compute_metrics.py"),
        MetricSpec("wasserstein_density", "W1 density", "min", "g/cm^3"),
        MetricSpec("wasserstein_nelements", "W1 #elements", "min", ""),
        FAILED,
    )


def _disorder_metrics(kind: str) -> tuple[MetricSpec, ...]:
    if kind == "interface":
        ref = f"{DISMAI_BENCH} benchmark/int/motif"
        return tuple(MetricSpec(k, k, "min", "", f"Euclidean distance of average CrystalNN fingerprints ({k[2:]})",
                                ref) for k in ("d_all", "d_Li", "d_Co", "d_Sc")) + (FAILED,)
    ref = f"{DISMAI_BENCH} benchmark/a_Si"
    return (MetricSpec("d_motif", "d_motif", "min", "", "average CrystalNN fingerprint distance", ref + "/motif"),
            MetricSpec("d_rdf", "d_rdf", "min", "", "average RDF distance (vasppy normalisation)", ref + "/rdf"),
            MetricSpec("d_angle", "d_angle", "min", "",
                       "average bond-angle distribution distance, 0.5 degree bins closed on the right "
                       "(pandas.cut)", ref + "/bond_angle/bin_bond_angles.py"),
            FAILED)


#: CDVAE's COV cutoffs (txie-93/cdvae scripts/compute_metrics.py COV_Cutoffs) for the datasets it has them for
CDVAE_COV_CUTOFFS = {"perov-5": {"struc": 0.2, "comp": 4.0}, "carbon-24": {"struc": 0.2, "comp": 4.0}}
RECONSTRUCTION_DATASETS = ("jarvis-supercon-3d", "alexandria-ds-ab", "perov-5", "carbon-24")
#: the alloy dataset's configs: one per MC temperature (K) and SRO selection (wide: any snapshot;
#: narrow: Warren-Cowley values near the pool means); the alloy builder names its configs with
#: :func:`alloy_config`
ALLOY_TEMPERATURES = (300, 1500)
ALLOY_SELECTIONS = ("wide", "narrow")


def alloy_config(temperature: int, selection: str) -> str:
    """Config name of the alloy dataset, e.g. ``300K_narrow``."""
    return f"{temperature}K_{selection}"


ALLOY_CONFIGS = tuple(alloy_config(t, k) for t in ALLOY_TEMPERATURES for k in ALLOY_SELECTIONS)
#: the alloy dataset's default config (the one its card and loaders open first)
ALLOY_DEFAULT_CONFIG = alloy_config(300, "narrow")


def _build() -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    recon_cols = ("match_rate", "rmse", "atomgen_score", "wrong_composition_fraction", "atombench_match_rate",
                  "atombench_rmse") + tuple(f"mae_{p}" for p in LATTICE) + tuple(
                  f"kld_{p}" for p in LATTICE) + ("percent_failed",)
    for d in RECONSTRUCTION_DATASETS:
        tasks[d] = Task(
            d, "reconstruction", d, None, "test",
            Protocol("none: structures scored as submitted; targets are the benchmark's own test rows (never a "
                     "target column of the predictions)", "none", "one prediction per test row (keyed by id)"),
            _recon_metrics(), "match_rate", recon_cols,
            description="crystal structure prediction: ranked by the match rate"
                        + ("; atomgen_score is the number JARVIS-Leaderboard publishes" if d == "jarvis-supercon-3d"
                           else ""))
    for d in RECONSTRUCTION_DATASETS:
        tasks[f"generation/{d}"] = Task(
            f"generation/{d}", "generation", d, None, "test",
            Protocol("none", "none", "a set of generated structures (any number)"),
            _generation_metrics(), "coverage_recall",
            ("coverage_recall", "percent_failed", "validity_structural", "validity_compositional", "uniqueness",
             "novelty", "coverage_precision", "cdvae_validity_all", "cdvae_cov_recall", "cdvae_cov_precision"),
            description="generation: coverage of the test split")
    for c in ALLOY_CONFIGS:
        tasks[f"alloy/{c}"] = Task(
            f"alloy/{c}", "alloy", "alloy", c, "train",
            Protocol("remove_atoms_not_on_lattice_cryingan.py: each reference FCC site takes the species of the "
                     "nearest generated atom within 0.8 A (reference lattice as is; an empty site is a vacancy) "
                     "and the atom is placed on the site; --alloy-cleanup diffcsp translates the reference "
                     "lattice first (remove_atoms_not_on_lattice_diffcsp.py), none keeps the positions (the "
                     "reference's CDVAE path counts around actual positions)",
                     "none", "1000 generated structures in the paper", cleanup_id="cryingan"),
            _alloy_metrics(), "d_cluster", ("d_cluster", "percent_with_vacancies", "percent_failed"),
            dismai_axis=True, description="Dismai-Bench Fe-Ni-Cr alloy")
    tasks["interface"] = Task(
        "interface", "interface", "interface", None, "train",
        Protocol("move apart (1.5 A rule, 100 iterations)",
                 "M3GNet, positions only, fmax 0.05 eV/A, with Dismai-Bench's optimiser: scipy's conjugate "
                 "gradient as its relax_int.py drives it (at most 1000 iterations; accepted at fmax <= 0.051 "
                 "eV/A as there); --relax-optimizer fire relaxes with FIRE (at most 1000 steps)",
                 "1000 generated structures in the paper", optimizer_id="CG"),
        _disorder_metrics("interface"), "d_all", ("d_all", "d_Li", "d_Co", "d_Sc", "percent_failed"),
        dismai_axis=True, description="interface (d_Li, d_Co, d_Sc, d_all, % failed)", scores_since="0.3.0")
    tasks["a-si"] = Task(
        "a-si", "a-si", "a-si", None, "train",
        Protocol("move apart (1.5 A rule, 100 iterations)", "LAMMPS (the dataset's potential), positions only, "
                 "fmax 0.05 eV/A (--relax-weights: that M3GNet potential, FIRE)", "1000 generated structures in "
                 "the paper", optimizer_id="FIRE"),
        _disorder_metrics("a-si"), "d_motif", ("d_motif", "d_rdf", "d_angle", "percent_failed"),
        dismai_axis=True, description="a-Si (d_motif, d_rdf, d_angle)")
    return tasks


TASKS: dict[str, Task] = _build()
#: axes of the leaderboard's rank chart: (task, headline)
DISMAI_AXES: list[tuple[str, str]] = [(t, TASKS[t].headline) for t in
                                      ["interface", "a-si"] + [f"alloy/{c}" for c in ALLOY_CONFIGS]]


#: datasets of fixed composition and cell (the Dismai-Bench tasks): generators make new
#: arrangements in the training cell rather than predict a structure per row
FIXED_CELL_DATASETS: tuple[str, ...] = tuple(dict.fromkeys(t.dataset for t in TASKS.values() if t.dismai_axis))


def task_names() -> list[str]:
    return list(TASKS)


def get(name: str) -> Task:
    """The task, or ``KeyError`` naming the known ones."""
    t = (name or "").strip()
    if t not in TASKS:
        raise KeyError(f"unknown task {t!r}; known: {', '.join(TASKS)}")
    return TASKS[t]


def _value(metrics: dict, key: str) -> float | None:
    m = metrics.get(key)
    v = m.get("value") if isinstance(m, dict) else getattr(m, "value", m)
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def accepted_fraction(task: Task | str, metrics: dict, n_submitted: int | None = None,
                      n_accepted: int | None = None) -> float | None:
    """The fraction the ranking floor applies to (``task.floor_metric``)."""
    t = get(task) if isinstance(task, str) else task
    if t.floor_metric != "accepted_fraction":
        return _value(metrics, t.floor_metric)
    if n_submitted:
        return (n_accepted or 0) / n_submitted
    pf = _value(metrics, "percent_failed")
    return None if pf is None else 1.0 - pf / 100.0


def rankable(task: Task | str, metrics: dict, n_submitted: int | None = None,
             n_accepted: int | None = None) -> bool:
    t = get(task) if isinstance(task, str) else task
    if _value(metrics, t.headline) is None:
        return False
    f = accepted_fraction(t, metrics, n_submitted, n_accepted)
    # a row without any count (a published number entered by hand) is not held to the floor;
    # every scored submission carries its counts
    return f is None or f >= t.min_accepted_fraction


def rank_key(task: Task | str, metrics: dict, n_submitted: int | None = None,
             n_accepted: int | None = None) -> tuple:
    """Sort key: rankable submissions first, by the headline (best first); then the rest."""
    t = get(task) if isinstance(task, str) else task
    if not rankable(t, metrics, n_submitted, n_accepted):
        return (1, 0.0)
    v = _value(metrics, t.headline)
    return (0, v if t.headline_spec.better == "min" else -v)


def rank_order(task: Task | str, entries: list[tuple[dict, int | None, int | None]]) -> list[int | None]:
    """Ranks (1 = best, ties share) of ``(metrics, n_submitted, n_accepted)`` entries in
    the given order; ``None`` for an entry that is not rankable."""
    t = get(task) if isinstance(task, str) else task
    keys = [rank_key(t, *e) for e in entries]
    order = sorted(range(len(entries)), key=lambda i: keys[i])
    ranks: list[int | None] = [None] * len(entries)
    prev, rank = None, 0
    for pos, i in enumerate(order, 1):
        if keys[i][0] == 1:
            continue
        if keys[i] != prev:
            rank, prev = pos, keys[i]
        ranks[i] = rank
    return ranks


def help_text() -> str:
    """One line per task for ``dismai evaluate --help``."""
    kinds: dict[str, list[str]] = {}
    for t in TASKS.values():
        kinds.setdefault(t.kind, []).append(t.name)
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in kinds.items())


__all__ = ["Task", "MetricSpec", "Protocol", "TASKS", "DISMAI_AXES", "MIN_ACCEPTED_FRACTION", "get", "task_names",
           "rankable", "rank_key", "rank_order", "accepted_fraction", "help_text", "RECONSTRUCTION_DATASETS",
           "ALLOY_TEMPERATURES", "ALLOY_SELECTIONS", "ALLOY_CONFIGS", "ALLOY_DEFAULT_CONFIG", "alloy_config",
           "FIXED_CELL_DATASETS"]
