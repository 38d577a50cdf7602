"""The interface and a-Si tasks (benchmark-definitions 3.1, 3.2): features and scores.

* :func:`rdf_fast` — the Si-Si RDF of the 2x2x2 supercell, r in 0-10 Å with 0.02 Å bins,
  ``vasppy.rdf.RadialDistributionFunction``'s normalisation (``hist / rho / (shell volume * N)``).
  It counts every periodic pair of the *original* cell within r_max once
  (:func:`dismai_data.geometry.rdf`) instead of all (8N)^2 minimum-image distances of the
  supercell: both give the same histogram when r_max is below half of every supercell width
  (checked; otherwise it falls back to the reference computation,
  :func:`.disorder_reference.rdf_reference`). Equal to vasppy to <= 1e-8 (tested).
* :func:`bond_angle_distribution` — neighbours from ``CrystalNN(distance_cutoffs=None,
  x_diff_weight=0, porous_adjustment=False)``, all angles between pairs of neighbour
  bonds of each atom, 0-180° in 0.5° bins closed on the right (``pandas.cut`` with
  ``include_lowest``, as the reference's ``bin_bond_angles.py``), normalised to sum 1.
* :func:`crystalnn_fingerprints` — the 61-number matminer ``CrystalNNFingerprint`` ("ops"
  preset: CrystalNN weights and wt x order parameters per CN 1-24); the interface variant adds
  oxidation states, ``cation_anion=True`` and the Cl/O fractions per CN (109 numbers). The tasks
  use the fast implementation (:mod:`.crystalnn`, equal to the libraries to <= 1e-8,
  tests/test_crystalnn.py); the library references it is tested against are in
  :mod:`.disorder_reference`.
* :func:`evaluate_disorder` — the ``a-si`` and ``interface`` tasks: move apart, relax
  (:mod:`.disorder_prepare`), fingerprints. A structure that fails to relax is rejected
  with the reason in the per-row table; ``relax=None`` (``--no-relax``) scores the
  structures unrelaxed and the result says so.
"""

from __future__ import annotations

import numpy as np

from dismai_data.geometry import rdf

from .disorder_prepare import move_apart_task, relax_generated
from .disorder_reference import ANGLE_BIN, RDF_DR, RDF_RMAX, rdf_reference


def rdf_fast(structure, r_max: float = RDF_RMAX, dr: float = RDF_DR) -> np.ndarray:
    """Same numbers as :func:`.disorder_reference.rdf_reference`, from the original cell's periodic pairs
    (:func:`dismai_data.geometry.rdf`) where ``r_max`` is below half of every 2x2x2 supercell width."""
    lat = structure.lattice
    m = lat.matrix
    vol = abs(np.linalg.det(m))
    # widths of the 2x2x2 supercell (distance between opposite faces)
    widths = 2 * vol / np.linalg.norm(np.cross(m[[1, 2, 0]], m[[2, 0, 1]]), axis=1)
    if r_max >= widths.min() / 2:
        return rdf_reference(structure, r_max, dr)
    return rdf(structure, r_max, dr)


def bond_angle_distribution(structure, bin_width: float = ANGLE_BIN) -> np.ndarray:
    """Normalised histogram (sum 1) of neighbour-bond angles, 0-180° in ``bin_width`` bins
    (fast CrystalNN of ``crystalnn.py``, equal to :func:`.disorder_reference.bond_angle_distribution_reference`
    to <= 1e-8: tests/test_crystalnn.py)."""
    from .crystalnn import bond_angle_distribution as fast

    return fast(structure, bin_width)


def crystalnn_fingerprints(structure, indices=None) -> np.ndarray:
    """61-number CrystalNN fingerprints (matminer "ops" preset) of the given sites (fast,
    equal to
    :func:`.disorder_reference.crystalnn_fingerprints_reference` to <= 1e-8: tests/test_crystalnn.py)."""
    from .crystalnn import fingerprints

    return fingerprints(structure, indices)


# --------------------------------------------------------------------------- fingerprints
OXIDATION_STATES = {"Li": 1, "Sc": 3, "Co": 3, "Cl": -1, "O": -2}
FRACTION_SPECIES = ("Cl", "O")
INTERFACE_CATIONS = ("Li", "Co", "Sc")
INTERFACE_WEIGHTS = {"Li": 72, "Co": 36, "Sc": 12}


def decorate(structure):
    """Copy of ``structure`` with the interface task's oxidation states (:data:`OXIDATION_STATES`)."""
    s = structure.copy()
    s.add_oxidation_state_by_element(OXIDATION_STATES)
    return s


# --------------------------------------------------------------------------- per-structure work
def structure_features(task):
    """Features of one structure for the a-Si / interface tasks (steps 3-4 of 3.1, 2-4 of 3.2).

    ``task = (structure_or_row, kind)``: a prepared (moved apart, relaxed) generated
    Structure, or a training row."""
    from dismai_data.structure import row_to_structure

    item, kind = task[0], task[1]
    try:
        s = row_to_structure(item) if isinstance(item, dict) else item
        from .crystalnn import fingerprints

        if kind == "a-si":
            fps = fingerprints(s)
            return {"ok": True, "reason": None, "motif": fps.mean(axis=0), "rdf": rdf_fast(s),
                    "angle": bond_angle_distribution(s)}
        out = {"ok": True, "reason": None}
        symbols = [site.specie.symbol for site in s]
        idx = [i for i, sym in enumerate(symbols) if sym in INTERFACE_CATIONS]
        # one neighbour list for all cations; the same numbers as site_fingerprint on decorate(s)
        fps = fingerprints(s, idx, cation_anion=True, oxidation_states=OXIDATION_STATES,
                           fraction_species=FRACTION_SPECIES)
        for el in INTERFACE_CATIONS:
            out[el] = fps[[symbols[i] == el for i in idx]].mean(axis=0)
        return out
    except Exception as exc:  # a pathological structure fails alone
        return {"ok": False, "reason": f"fingerprint: {type(exc).__name__}: {exc}"}


def evaluate_disorder(kind: str, preds, ref, *, workers: int = 1, scheduler=None, relax: dict | None = None,
                      outdir=None, label: str = "", figures: bool = True) -> dict:
    """a-Si (d_motif, d_rdf, d_angle) or interface (d_Li, d_Co, d_Sc, d_all + cosine) scores.

    ``relax``: how generated structures are relaxed after the move-apart rule (see
    :func:`relax_generated`); None scores them unrelaxed (``--no-relax``). Training rows
    are used as stored (the datasets hold relaxed structures)."""
    from .parallel import parallel_map

    table, todo = _composition_table(preds, ref, relax)
    ready, relax_settings = _prepare_generated(kind, preds, table, todo, relax, workers, scheduler)
    keys_ready = list(ready)
    gen = parallel_map(structure_features, [(ready[k], kind) for k in keys_ready],
                       workers=workers, scheduler=scheduler, desc=f"{kind}: generated structures", chunksize=1)
    train = parallel_map(structure_features, [(r, kind) for r in ref.rows], workers=workers,
                         scheduler=scheduler, desc=f"{kind}: training structures", chunksize=1)
    train = [t for t in train if t["ok"]]
    acc = []
    for k, res in zip(keys_ready, gen):
        if res["ok"]:
            table[k].update(status="accepted", reason=None)
            acc.append(res)
        else:
            table[k]["reason"] = res["reason"]
    metrics, curves = _distance_metrics(kind, acc, train)
    files = {}
    if outdir is not None and figures and acc:
        files = _curve_figures(curves, outdir, label)
    return {"metrics": metrics, "table": table, "files": files,
            "settings": _settings(kind, relax, relax_settings)}


def _composition_table(preds, ref, relax: dict | None) -> tuple[list[dict], list[int]]:
    """The per-row table (every row failed until scored) and the rows with the task's composition
    (the first reference row's), which go on to be scored."""
    from collections import Counter

    ref_comp = Counter(ref.rows[0]["species"])
    table, todo = [], []
    for it in preds.items:
        rec = {"id": it.id, "status": "failed", "reason": it.reason, "move_apart_iterations": None}
        if relax is not None:
            rec.update(relax_steps=None, relax_fmax=None, relax_energy_eV=None)
        if it.ok:
            comp = Counter(it.row["species"])
            if comp != ref_comp:
                rec["reason"] = (f"species: composition {dict(sorted(comp.items()))} differs from the task's "
                                 f"{dict(sorted(ref_comp.items()))}")
            else:
                todo.append(len(table))
        table.append(rec)
    return table, todo


def _prepare_generated(kind: str, preds, table: list[dict], todo: list[int], relax: dict | None, workers: int,
                       scheduler) -> tuple[dict, dict | None]:
    """Move apart (1.5 A rule) and, with ``relax``, relax the rows ``todo``; failures get their reason
    in the table. Returns (table index -> prepared Structure, relaxation settings or None)."""
    from .parallel import parallel_map

    moved = parallel_map(move_apart_task, [preds.items[k].row for k in todo], workers=workers,
                         scheduler=scheduler, desc=f"{kind}: moving atoms apart", chunksize=1)
    ready: dict[int, object] = {}
    for k, res in zip(todo, moved):
        table[k]["move_apart_iterations"] = res.get("move_apart_iterations")
        if res["ok"]:
            ready[k] = res["structure"]
        else:
            table[k]["reason"] = res["reason"]
    if relax is None:
        return ready, None
    relaxed, relax_settings = relax_generated(ready, relax, workers=workers, scheduler=scheduler)
    ready = {}
    for k, res in relaxed.items():
        table[k].update(relax_steps=res["relax_steps"], relax_fmax=res["relax_fmax"],
                        relax_energy_eV=res["relax_energy_eV"])
        if res["ok"]:
            ready[k] = res["structure"]
        else:
            table[k]["reason"] = res["reason"]
    return ready, relax_settings


def _distance(acc: list[dict], train: list[dict], key: str, cosine: bool = False):
    """Bootstrap (value, low, high) of the Euclidean (or cosine) distance between the average
    ``key`` feature of the accepted structures and of the training ones; also the generated
    features (rows) and the training average."""
    from .stats import bootstrap_stat

    g = np.array([a[key] for a in acc]) if acc else np.zeros((0, 1))
    t = np.mean([x[key] for x in train], axis=0)

    def fn(idx):
        m = g[idx].mean(axis=0)
        if cosine:
            return float(1 - m @ t / (np.linalg.norm(m) * np.linalg.norm(t)))
        return float(np.linalg.norm(m - t))
    return bootstrap_stat(len(acc), fn), g, t


def _distance_metrics(kind: str, acc: list[dict], train: list[dict]) -> tuple[dict, dict]:
    """The task's distances (a-Si: motif, RDF, angle; interface: per cation, cosine too, and the
    72 : 36 : 12 weighted average). Returns (metrics, key -> (generated average or None, train
    average)) for the figures."""
    from .result import Metric

    n = len(acc)
    metrics = {}
    keys = (("d_motif", "motif"), ("d_rdf", "rdf"), ("d_angle", "angle")) if kind == "a-si" else \
        tuple((f"d_{el}", el) for el in INTERFACE_CATIONS)
    curves = {}
    for name, key in keys:
        (v, lo, hi), g, t = _distance(acc, train, key)
        metrics[name] = Metric(value=v, error_low=lo, error_high=hi, n=n,
                               description=f"Euclidean distance of average {key} features, generated vs train")
        curves[key] = (g.mean(axis=0) if n else None, t)
        if kind == "interface":
            (v, lo, hi), _, _ = _distance(acc, train, key, cosine=True)
            metrics[f"cos_{name}"] = Metric(value=v, error_low=lo, error_high=hi, n=n,
                                            description=f"cosine distance of average {key} fingerprints")
    if kind == "interface":
        w = INTERFACE_WEIGHTS
        for a in acc + train:
            a["all"] = sum(w[el] * a[el] for el in INTERFACE_CATIONS) / sum(w.values())
        for name, cos in (("d_all", False), ("cos_d_all", True)):
            (v, lo, hi), _, _ = _distance(acc, train, "all", cosine=cos)
            metrics[name] = Metric(value=v, error_low=lo, error_high=hi, n=n,
                                   description="cation fingerprints weighted 72 Li : 36 Co : 12 Sc")
    return metrics, curves


def _curve_figures(curves: dict, outdir, label: str) -> dict[str, str]:
    """One PNG per feature: training average vs generated average."""
    from dismai_data.figures import pyplot

    plt = pyplot()
    fig_dir = outdir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for key, (g, t) in curves.items():
        f, ax = plt.subplots(figsize=(10, 3.5))
        x = np.arange(len(t)) if key not in ("rdf", "angle") else (
            (np.arange(len(t)) + 0.5) * (RDF_DR if key == "rdf" else ANGLE_BIN))
        ax.plot(x, t, label="train average")
        ax.plot(x, g, "--", label="generated average")
        ax.set_xlabel({"rdf": "r (Å)", "angle": "bond angle (°)"}.get(key, "fingerprint entry"))
        ax.set_title(f"{label}: {key}", fontsize=10)
        ax.legend()
        f.tight_layout()
        p = fig_dir / f"{key}.png"
        f.savefig(p, dpi=100)
        plt.close(f)
        files[f"figure_{key}"] = str(p)
    return files


def _settings(kind: str, relax: dict | None, relax_settings: dict | None) -> dict:
    from .stats import BOOTSTRAP_REPS, BOOTSTRAP_SEED

    return {"move_apart": {"min_distance_A": 1.5, "target_A": 1.6, "max_iterations": 100},
            "fingerprint": "matminer CrystalNNFingerprint 'ops' preset (fast exact implementation, "
                           "evaluation/crystalnn.py)"
                           + (", cation_anion=True, oxidation states " + str(OXIDATION_STATES)
                              + ", + Cl/O fractions per CN (109)" if kind == "interface" else
                              " (61)"),
            "rdf": {"supercell": [2, 2, 2], "r_max_A": RDF_RMAX, "bin_A": RDF_DR,
                    "definition": "vasppy RadialDistributionFunction"} if kind == "a-si" else None,
            "angle": {"bin_deg": ANGLE_BIN, "neighbours": "CrystalNN(distance_cutoffs=None, "
                      "x_diff_weight=0, porous_adjustment=False)"} if kind == "a-si" else None,
            "relaxation": relax_settings if relax is not None else "none (--no-relax)",
            "bootstrap": {"repetitions": BOOTSTRAP_REPS, "seed": BOOTSTRAP_SEED}}
