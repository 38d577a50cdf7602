"""Pieces of the interface and a-Si tasks (benchmark-definitions 3.1, 3.2).

* :func:`move_apart` — the 1.5 Å rule: per iteration find all unique pairs closer than
  1.5 Å (periodic images included) and, pair by pair in (i, j) order, move the second
  atom along the bond to 1.6 Å from the first (positions updated as it goes); at most
  100 iterations, still too close -> not ok.
* :func:`rdf_reference` / :func:`rdf_fast` — the Si-Si RDF of the 2x2x2 supercell, r in
  0-10 Å with 0.02 Å bins, ``vasppy.rdf.RadialDistributionFunction``'s normalisation
  (``hist / rho / (shell volume * N)``). The fast version counts every periodic pair of
  the *original* cell within r_max once (a KD-tree neighbour list) instead of all
  (8N)^2 minimum-image distances of the supercell: both give the same histogram when
  r_max is below half of every supercell width (checked; otherwise it falls back to
  the reference computation). Equal to vasppy to <= 1e-8 (tested).
* :func:`bond_angle_distribution` — neighbours from ``CrystalNN(distance_cutoffs=None,
  x_diff_weight=0, porous_adjustment=False)``, all angles between pairs of neighbour
  bonds of each atom, 0-180° in 0.5° bins closed on the right (``pandas.cut`` with
  ``include_lowest``, as the reference's ``bin_bond_angles.py``), normalised to sum 1.
* :func:`crystalnn_fingerprints` / :func:`site_fingerprint` — the 61-number matminer
  ``CrystalNNFingerprint`` ("ops" preset: CrystalNN weights and wt x order parameters per
  CN 1-24); the interface variant adds oxidation states, ``cation_anion=True`` and
  the Cl/O fractions per CN (109 numbers). The tasks use the fast implementation
  (``evaluation/crystalnn.py``, equal to the libraries to <= 1e-8, tests/test_crystalnn.py);
  :func:`site_fingerprint` and the ``*_reference`` functions are the library-based
  references it is tested against.
* :func:`evaluate_disorder` — the ``a-si`` and ``interface`` tasks: move apart, relax
  (:func:`relax_generated`: interface with the M3GNet relaxer of the shared engine
  :mod:`dismai_data.physics.relax`; a-Si with the LAMMPS potential the dataset was built with,
  :mod:`dismai_data.physics.lammps`), fingerprints. A structure that fails to relax is rejected
  with the reason in the per-row table; ``relax=None`` (``--no-relax``) scores the
  structures unrelaxed and the result says so.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from dismai_data.geometry import angle_histogram, neighbour_angles, rdf

RDF_RMAX = 10.0
RDF_DR = 0.02
ANGLE_BIN = 0.5


def move_apart(structure, min_dist: float = 1.5, target: float = 1.6, max_iter: int = 100):
    """Copy of ``structure`` with close pairs pushed apart. Returns ``(structure, ok, iterations)``."""
    s = structure.copy()
    lat = s.lattice.matrix
    for it in range(max_iter + 1):
        centers, nbrs, images, dists = s.get_neighbor_list(min_dist)
        pairs = sorted({(int(i), int(j), tuple(int(x) for x in im)) for i, j, im, d in
                        zip(centers, nbrs, images, dists) if (i < j) and d < min_dist})
        if not pairs:
            return s, True, it
        if it == max_iter:
            return s, False, it
        cart = s.cart_coords.copy()
        for i, j, im in pairs:
            vj = cart[j] + np.asarray(im, float) @ lat
            v = vj - cart[i]
            d = float(np.linalg.norm(v))
            if d < 1e-12:
                v, d = np.array([1.0, 0.0, 0.0]), 1.0
            cart[j] = cart[i] + v / d * target - np.asarray(im, float) @ lat
        s = type(s)(s.lattice, s.species, cart, coords_are_cartesian=True)
    return s, False, max_iter


def rdf_reference(structure, r_max: float = RDF_RMAX, dr: float = RDF_DR) -> np.ndarray:
    """vasppy RDF of all sites of the 2x2x2 supercell."""
    from vasppy.rdf import RadialDistributionFunction

    sc = structure * (2, 2, 2)
    nbins = int(round(r_max / dr))
    ref = RadialDistributionFunction([sc], list(range(len(sc))), nbins=nbins, r_min=0.0, r_max=r_max)
    return ref.rdf


def rdf_fast(structure, r_max: float = RDF_RMAX, dr: float = RDF_DR) -> np.ndarray:
    """Same numbers as :func:`rdf_reference`, from the original cell's periodic pairs
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
    (fast CrystalNN of ``crystalnn.py``, equal to :func:`bond_angle_distribution_reference`
    to <= 1e-8: tests/test_crystalnn.py)."""
    from .crystalnn import bond_angle_distribution as fast

    return fast(structure, bin_width)


def crystalnn_fingerprints(structure, indices=None) -> np.ndarray:
    """61-number CrystalNN fingerprints (matminer "ops" preset) of the given sites (fast,
    equal to :func:`crystalnn_fingerprints_reference` to <= 1e-8: tests/test_crystalnn.py)."""
    from .crystalnn import fingerprints

    return fingerprints(structure, indices)


def bond_angle_distribution_reference(structure, bin_width: float = ANGLE_BIN) -> np.ndarray:
    """The library reference of :func:`bond_angle_distribution` (pymatgen CrystalNN per site)."""
    from pymatgen.analysis.local_env import CrystalNN


    cnn = CrystalNN(distance_cutoffs=None, x_diff_weight=0, porous_adjustment=False)
    angles = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, site in enumerate(structure):
            nn = cnn.get_nn_info(structure, i)
            vecs = np.array([d["site"].coords - site.coords for d in nn])
            if len(vecs) < 2:
                continue
            angles.append(neighbour_angles(vecs, bin_width))
    return angle_histogram(np.concatenate(angles) if angles else np.zeros(0), bin_width)


def crystalnn_fingerprints_reference(structure, indices=None) -> np.ndarray:
    """The library reference of :func:`crystalnn_fingerprints` (matminer, site by site)."""
    from matminer.featurizers.site import CrystalNNFingerprint

    f = CrystalNNFingerprint.from_preset("ops")
    idx = range(len(structure)) if indices is None else indices
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([f.featurize(structure, i) for i in idx], dtype=float)


# --------------------------------------------------------------------------- fingerprints
OXIDATION_STATES = {"Li": 1, "Sc": 3, "Co": 3, "Cl": -1, "O": -2}
FRACTION_SPECIES = ("Cl", "O")
INTERFACE_CATIONS = ("Li", "Co", "Sc")
INTERFACE_WEIGHTS = {"Li": 72, "Co": 36, "Sc": 12}
MAX_CN = 24


@lru_cache(maxsize=2)
def _featurizer(cation_anion: bool):
    from matminer.featurizers.site import CrystalNNFingerprint

    return CrystalNNFingerprint.from_preset("ops", cation_anion=cation_anion)


def site_fingerprint(structure, idx: int, cation_anion: bool = False,
                     fraction_species: tuple[str, ...] = ()) -> np.ndarray:
    """matminer ``CrystalNNFingerprint`` ("ops") of one site, computed from one
    ``CrystalNN.get_nn_data`` call exactly as ``featurize`` does, plus (interface) for each
    CN 1..24 the fractions of that CN's neighbours that are each of ``fraction_species``
    (interleaved per CN: Cl_1, O_1, Cl_2, O_2, ...; zeros where the CN weight is 0)."""
    f = _featurizer(cation_anion)
    nndata = f.cnn.get_nn_data(structure, idx)
    out = []
    for cn in range(1, MAX_CN + 1):
        wt = nndata.cn_weights.get(cn, 0)
        for op in f.ops.get(cn, []):
            if op == "wt" or wt == 0:
                out.append(wt)
            else:
                neigh = [d["site"] for d in nndata.cn_nninfo[cn]]
                val = op.get_order_parameters([structure[idx]] + neigh, 0,
                                              indices_neighs=list(range(1, len(neigh) + 1)))[0]
                out.append(wt * (val or 0))
    for cn in range(1, MAX_CN + 1) if fraction_species else ():
        wt = nndata.cn_weights.get(cn, 0)
        neigh = nndata.cn_nninfo.get(cn, [])
        for sp in fraction_species:
            if wt == 0 or not neigh:
                out.append(0.0)
            else:
                out.append(sum(d["site"].specie.symbol == sp for d in neigh) / len(neigh))
    return np.asarray(out, dtype=float)


def decorate(structure):
    """Copy of ``structure`` with the interface task's oxidation states (:data:`OXIDATION_STATES`)."""
    s = structure.copy()
    s.add_oxidation_state_by_element(OXIDATION_STATES)
    return s


# --------------------------------------------------------------------------- per-structure work
RELAX_FMAX = 0.05
M3GNET_MAX_STEPS = 1000


def move_apart_task(row) -> dict:
    """Step 1 of 3.1/3.2 for one generated row: the structure after the 1.5 A rule, or why not."""
    from dismai_data.structure import row_to_structure

    try:
        s, ok, it = move_apart(row_to_structure(row))
    except Exception as exc:  # a pathological structure fails alone
        return {"ok": False, "reason": f"move apart: {type(exc).__name__}: {exc}", "move_apart_iterations": None}
    if not ok:
        return {"ok": False, "reason": f"move apart: atoms still closer than 1.5 A after {it} iterations",
                "move_apart_iterations": it}
    return {"ok": True, "structure": s, "move_apart_iterations": it}


def lammps_relax_task(task) -> list:
    """LAMMPS positions-only relaxation of a chunk of structures (one LAMMPS instance)."""
    from dismai_data.physics.lammps import relax_structures

    structures, potential, fmax = task
    return relax_structures(structures, potential, fmax=fmax)


def relax_generated(structures: dict, relax: dict, *, workers: int = 1, scheduler=None) -> tuple[dict, dict]:
    """Step 2 of 3.1/3.2: positions-only relaxation to ``fmax`` 0.05 eV/A.

    ``structures``: id -> moved-apart Structure. ``relax``: ``{"engine": "lammps",
    "potential": "sw-vink" | "sw" | "tersoff"}`` or ``{"engine": "m3gnet", "source": None |
    folder | hub repo}`` (the shared engine :mod:`dismai_data.physics.relax`; None = its default
    hub repo with the packaged offline copy as fallback). Returns ``(results, settings)``:
    id -> ``{"ok", "reason", "structure", "relax_steps", "relax_fmax", "relax_energy_eV"}``
    and what relaxed them."""
    from .parallel import parallel_map

    ids = list(structures)
    out: dict = {}
    if relax["engine"] == "lammps":
        from dismai_data.physics.lammps import describe

        n_chunks = max(1, min(len(ids), (workers or 1) * 4 if (workers or 1) > 1 or scheduler else 1))
        chunks = [ids[k::n_chunks] for k in range(n_chunks)] if ids else []
        res_chunks = parallel_map(lammps_relax_task, [([structures[i] for i in c], relax["potential"], RELAX_FMAX)
                                                      for c in chunks], workers=workers, scheduler=scheduler,
                                  desc="relaxing (LAMMPS)", chunksize=1)
        results = {i: r for c, rs in zip(chunks, res_chunks) for i, r in zip(c, rs)}
        settings = {"engine": "LAMMPS", "potential": relax["potential"], "description": describe(relax["potential"]),
                    "why": relax.get("why"), "fmax_eV_per_A": RELAX_FMAX, "cell": "fixed",
                    "minimizer": "min_style cg, min_modify norm max, minimize 0.0 fmax 100000 1000000, "
                                 "up to 5 rounds (as the a-Si builder)"}
    elif relax["engine"] == "m3gnet":
        from dismai_data.physics import relax as engine

        try:
            potential = engine.load_potential(relax.get("source"))
        except Exception as exc:
            from .sources import EvaluationInputError

            raise EvaluationInputError(f"cannot load the relaxer ({type(exc).__name__}: {exc})",
                                       source=str(relax.get("source") or engine.RELAXER_REPO),
                                       field="relax_weights") from None
        rs = engine.relax_many([(i, structures[i]) for i in ids], potential=potential, fmax=RELAX_FMAX,
                               max_steps=M3GNET_MAX_STEPS, scheduler=scheduler if isinstance(scheduler, str) else None,
                               workers=workers, progress=False) if ids else []
        results = dict(zip(ids, rs))
        settings = {"engine": "dismai_data.physics.relax (matgl M3GNet, FIRE)", "potential": engine._WEIGHTS_NAME,
                    "source": getattr(potential, "dismai_source", None),
                    "fallback_reason": getattr(potential, "dismai_fallback_reason", None),
                    "fmax_eV_per_A": RELAX_FMAX, "max_steps": M3GNET_MAX_STEPS, "cell": "fixed"}
    else:
        raise ValueError(f"unknown relaxation engine {relax['engine']!r}")
    for i in ids:
        r = results[i]
        rec = {"relax_steps": int(r.steps) if r.steps is not None else None,
               "relax_fmax": None if r.fmax is None else float(r.fmax),
               "relax_energy_eV": None if r.energy is None else float(r.energy)}
        if r.structure is None or not r.converged:
            why = r.error or "no structure returned"
            if r.structure is not None and not r.converged:
                why = (f"did not reach fmax {RELAX_FMAX} eV/A in {r.steps} steps (max force "
                       f"{r.fmax if r.fmax is None else round(float(r.fmax), 4)} eV/A)"
                       + (f"; {r.error}" if r.error else ""))
            out[i] = {"ok": False, "reason": f"relaxation: {why}", **rec}
        else:
            out[i] = {"ok": True, "reason": None, "structure": r.structure, **rec}
    return out, settings


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
    from .figures import pyplot

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
