"""Alloy task (Dismai-Bench Fe-Ni-Cr, paper 000 section 4.3; benchmark-definitions 3.3).

1. No relaxation. Each generated structure is put in the frame of the 256-site
   reference FCC lattice (:func:`dismai_data.ce.reference_lattice`), trying, in order:
   its fractional coordinates on the reference cell (exact for the reference cell and
   for any rigidly rotated copy of it), its Cartesian positions, and a rotation that
   takes the 2NN directions (cube axes, a = 3.6 Å) of one atom onto x, y, z; each also
   translated so that the atom nearest the origin sits on its nearest reference site.
   The candidate with the fewest unassigned atoms is kept.
2. Sites are filled by :func:`dismai_data.ce.occupation_from_positions` (each site takes
   the nearest atom within 0.8 Å, an atom is used at most once). More than 50
   unassigned atoms -> failed. Sites left empty are vacancies.
3. d_cluster = Euclidean distance between the average 45-number cluster-probability
   fingerprints of the accepted generated structures and of the training split;
   CE formation energies (eV/atom) and 1NN/2NN Warren-Cowley SRO per structure.

Row-level failures: species other than Cr/Fe/Ni, an atom count other than 256 or a
composition other than Cr51 Fe154 Ni51, > 50 unassigned atoms.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from dismai_data import ce

from .result import Metric
from .sources import PredictionSet, Reference
from .stats import BOOTSTRAP_REPS, BOOTSTRAP_SEED, bootstrap_mean, bootstrap_stat, wasserstein

ASSIGN_TOLERANCE = 0.8  # Å
MAX_UNASSIGNED = 50
LATTICE_CONSTANT = 3.6


def _translate(cart: np.ndarray, lat: "ce.Lattice") -> np.ndarray:
    """Shift so that the atom nearest the origin sits exactly on its nearest reference site."""
    frac = np.linalg.solve(lat.cell.T, cart.T).T
    f = frac - np.round(frac)
    a0 = int(np.argmin(np.linalg.norm(f @ lat.cell, axis=1)))
    d = lat.frac - frac[a0]
    d -= np.round(d)
    k = int(np.argmin(np.linalg.norm(d @ lat.cell, axis=1)))
    return cart + (d[k] @ lat.cell)


def _rotation_from_2nn(row) -> np.ndarray | None:
    """Rotation whose rows are the 2NN directions (cube axes) around atom 0, or None."""
    from dismai_data.structure import row_to_structure

    s = row_to_structure(row)
    nbrs = s.get_neighbors(s[0], LATTICE_CONSTANT + 0.4)
    vecs = [n.coords - s[0].coords for n in nbrs if abs(n.nn_distance - LATTICE_CONSTANT) < 0.4]
    if len(vecs) < 2:
        return None
    vecs = [v / np.linalg.norm(v) for v in vecs]
    e1 = vecs[0]
    e2 = min(vecs[1:], key=lambda v: abs(float(v @ e1)))
    e2 = e2 - (e2 @ e1) * e1
    if np.linalg.norm(e2) < 0.5:
        return None
    e2 /= np.linalg.norm(e2)
    return np.stack([e1, e2, np.cross(e1, e2)])


def assign(row, lat: "ce.Lattice | None" = None, tol: float = ASSIGN_TOLERANCE) -> tuple[np.ndarray, int, str]:
    """``(occupation, n_unassigned_atoms, alignment)`` of a row on the reference lattice."""
    lat = lat if lat is not None else ce.reference_lattice()
    frac = np.asarray(row["frac_coords"], dtype=float)
    cell = np.asarray(row["lattice"], dtype=float)
    cands = []
    g_gen, g_ref = cell @ cell.T, lat.cell @ lat.cell.T
    if np.max(np.abs(g_gen - g_ref)) / np.max(np.abs(g_ref)) < 0.1:
        cands.append(("fractional", frac @ lat.cell))
    cands.append(("cartesian", frac @ cell))
    if not cands[0][0] == "fractional":
        rot = _rotation_from_2nn(row)
        if rot is not None:
            cands.append(("2NN rotation", (frac @ cell) @ rot.T))
    best = None
    for name, cart in cands:
        for label, c in ((name, cart), (name + " + translation", _translate(cart, lat))):
            occ, un = ce.occupation_from_positions(c, row["species"], None, lat, tol)
            if best is None or un < best[1]:
                best = (occ, un, label)
            if un == 0 and not np.any(occ < 0):
                return best
    return best


def _fingerprint_rows(rows, lat):
    occs = np.stack([assign(r, lat)[0] for r in rows])
    return occs


def evaluate_alloy(preds: PredictionSet, ref: Reference, *, workers: int = 1, scheduler=None,
                   outdir: Path | None = None, label: str = "", figures: bool = True) -> dict:
    from .parallel import parallel_map

    lat = ce.reference_lattice()
    cexp = ce.load_cluster_expansion()
    ref_comp = Counter(ce.decode(lat.reference_occupation))
    n_sites = lat.n_sites

    # training split: exact positions on the reference lattice
    train_occ = np.stack([ce.occupation_from_row(r, lat, ASSIGN_TOLERANCE)[0] for r in ref.rows])
    train = ce.analyze(train_occ, lat, cexp)

    table: list[dict] = []
    todo = []
    for it in preds.items:
        rec = {"id": it.id, "status": "failed", "reason": it.reason, "alignment": None, "n_unassigned": None,
               "n_vacancies": None, "energy": None}
        if it.ok:
            species = it.row["species"]
            bad = sorted(set(species) - set(ce.SPECIES))
            comp = Counter(species)
            if bad:
                rec["reason"] = f"species: {bad} not in the alloy (Cr, Fe, Ni)"
            elif len(species) != n_sites:
                rec["reason"] = f"num_atoms: wrong atom count {len(species)} (the task has {n_sites})"
            elif comp != ref_comp:
                rec["reason"] = (f"species: wrong composition {dict(sorted(comp.items()))} "
                                 f"(the task has {dict(sorted(ref_comp.items()))})")
            else:
                todo.append((len(table), it.row))
        table.append(rec)
    results = parallel_map(_assign_one, [r for _, r in todo], workers=workers, scheduler=scheduler,
                           desc="lattice-site assignment")
    acc_idx, occs = [], []
    for (k, _), (occ, un, how) in zip(todo, results):
        rec = table[k]
        rec.update(alignment=how, n_unassigned=un, n_vacancies=int((occ < 0).sum()))
        if un > MAX_UNASSIGNED:
            rec["reason"] = f"assignment: {un} atoms unassigned (> {MAX_UNASSIGNED}) within {ASSIGN_TOLERANCE} A"
        else:
            rec["status"] = "accepted"
            rec["reason"] = None
            acc_idx.append(k)
            occs.append(occ)
    n = len(occs)
    metrics: dict[str, Metric] = {}
    if n:
        gen = ce.analyze(np.stack(occs), lat, cexp)
        fp, en, sro = gen["fingerprint"], gen["energy"], gen["sro"]
        for j, k in enumerate(acc_idx):
            table[k]["energy"] = float(en[j])
            for lab, v in zip(ce.SRO_LABELS, sro[j]):
                table[k][f"sro_{lab}"] = float(v)
    else:
        fp, en, sro = np.zeros((0, 45)), np.zeros(0), np.zeros((0, 12))
    train_fp_mean = train["fingerprint"].mean(axis=0)
    vac = np.array([1.0 if table[k]["n_vacancies"] > 0 else 0.0 for k in acc_idx])

    def d_cluster(idx):
        return float(np.linalg.norm(fp[idx].mean(axis=0) - train_fp_mean))

    def met(t, n_, unit, desc):
        return Metric(value=t[0], error_low=t[1], error_high=t[2], n=n_, unit=unit, description=desc)

    metrics["d_cluster"] = met(bootstrap_stat(n, d_cluster), n, "",
                               "Euclidean distance of the average 45-number cluster-probability fingerprints, "
                               "accepted generated vs training split")
    pv = bootstrap_mean(vac)
    metrics["percent_with_vacancies"] = met(tuple(None if x is None else 100 * x for x in pv), n, "%",
                                            "accepted structures with at least one vacant reference site")
    metrics["energy_mean"] = met(bootstrap_mean(en), n, "eV/atom", "mean CE formation energy, accepted")
    metrics["energy_mean_train"] = Metric(value=float(train["energy"].mean()), n=len(train_occ), unit="eV/atom",
                                          description="mean CE formation energy of the training split")
    metrics["wasserstein_energy"] = met(bootstrap_stat(n, lambda i: wasserstein(en[i], train["energy"])), n,
                                        "eV/atom", "1-D Wasserstein distance of CE energies, accepted vs train")
    for j, lab in enumerate(ce.SRO_LABELS):
        col = sro[:, j]
        metrics[f"sro_mean_{lab}"] = met(bootstrap_mean(col[np.isfinite(col)]), int(np.isfinite(col).sum()), "",
                                         f"mean Warren-Cowley {lab} (train mean "
                                         f"{np.nanmean(train['sro'][:, j]):.4f})")
    files = {}
    if outdir is not None and figures:
        files.update(_alloy_figures(outdir / "figures", label, fp, train["fingerprint"], en, train["energy"],
                                    sro, train["sro"], metrics))
    return {"metrics": metrics, "table": table,
            "settings": {"assignment_tolerance_A": ASSIGN_TOLERANCE, "max_unassigned": MAX_UNASSIGNED,
                         "alignment": "fractional-on-reference-cell / cartesian / 2NN rotation, each with "
                                      "translation of the atom nearest the origin onto its site; fewest "
                                      "unassigned kept",
                         "fingerprint": "dismai_data.ce.cluster_probabilities (45), vacancies take part in no "
                                        "pair", "reference_split": ref.split,
                         "bootstrap": {"repetitions": BOOTSTRAP_REPS, "seed": BOOTSTRAP_SEED,
                                       "resampled": "accepted generated structures"}},
            "files": files}


def _assign_one(row):
    return assign(row)


def _alloy_figures(fig: Path, label, fp, fp_train, en, en_train, sro, sro_train, metrics) -> dict:
    from .figures import _plt, overlay_histograms

    fig.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    out = {}
    f, axes = plt.subplots(2, 6, figsize=(18, 6))
    for j, (lab, ax) in enumerate(zip(ce.SRO_LABELS, axes.ravel())):
        tr = sro_train[:, j][np.isfinite(sro_train[:, j])]
        ge = sro[:, j][np.isfinite(sro[:, j])] if len(sro) else np.zeros(0)
        allv = np.concatenate([tr, ge]) if ge.size else tr
        edges = np.histogram_bin_edges(allv, bins=30) if allv.size else 30
        ax.hist(tr, bins=edges, density=True, alpha=0.5, label="train")
        if ge.size:
            ax.hist(ge, bins=edges, density=True, alpha=0.5, label="generated")
        ax.set_title(lab, fontsize=9)
    axes[0, 0].legend(fontsize=8)
    f.suptitle(f"{label}: Warren-Cowley SRO (1NN, 2NN)")
    f.tight_layout()
    p = fig / "sro_histograms.png"
    f.savefig(p, dpi=100)
    plt.close(f)
    out["figure_sro"] = str(p)
    out["figure_energy"] = str(overlay_histograms(
        {"train": en_train, "generated": en}, fig / "ce_energy.png", f"{label}: CE formation energy",
        "E (eV/atom)", note=f"W1 = {metrics['wasserstein_energy'].value}"))
    f, ax = plt.subplots(figsize=(12, 4))
    x = np.arange(45)
    ax.plot(x, fp_train.mean(axis=0), "o-", label="train average")
    if len(fp):
        ax.plot(x, fp.mean(axis=0), "s--", label="generated average")
    ax.set_xticks(x)
    ax.set_xticklabels(ce.FINGERPRINT_LABELS, rotation=90, fontsize=6)
    d = metrics["d_cluster"].value
    ax.set_title(f"{label}: cluster probabilities, d_cluster = {d:.4g}" if d is not None else label)
    ax.legend()
    f.tight_layout()
    p = fig / "cluster_fingerprint.png"
    f.savefig(p, dpi=100)
    plt.close(f)
    out["figure_cluster_fingerprint"] = str(p)
    return out
