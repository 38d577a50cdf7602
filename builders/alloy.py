"""Dismai-Bench Fe60Ni20Cr20 alloys, rebuilt by cluster-expansion Monte Carlo.

Four configs, one per temperature and SRO selection (named by
:func:`dismai_data.tasks.alloy_config`; the list is :data:`dismai_data.tasks.ALLOY_CONFIGS`), each split
80/20 ``train``/``validation``. Physics in :mod:`dismai_data.physics.ce` (CE of
``fenicr_ce_eci.json`` on the 256-site reference lattice ``alloy_ref_struc.extxyz``).

Procedure (full size = the paper's Methods 4.1; every step seeded from ``seed``):

1. For each temperature T and run r = 0..runs-1: ``ss = numpy.random.SeedSequence([seed,
   T, r]).generate_state(2)``; the initial occupation is the reference composition
   permuted by ``numpy.random.default_rng(ss[1])``; canonical Metropolis MC with
   Kawasaki swaps of two unlike atoms (:func:`dismai_data.physics.ce.run_mc`, numba Mersenne
   Twister seeded with ``ss[0]``), ``passes`` passes of 256 attempted swaps, a snapshot
   after every ``snapshot_every`` passes. Snapshots at pass <= ``burn_in`` are discarded
   (equilibration); the rest form the *pool* of T (run-major, pass ascending).
2. wide: ``rng = numpy.random.default_rng([seed, T, 0])``; ``rng.choice(len(pool),
   n_per_config, replace=False)`` (then sorted). narrow: the pool mean of each of the
   12 Warren-Cowley values (1NN, 2NN x 6 pairs); eligible = snapshots with all 12 within
   ``sro_window`` of those means; ``default_rng([seed, T, 1]).choice(len(eligible), ...)``.
3. Split: the same generator then draws ``rng.permutation(n)``; the first
   ``round(train_fraction n)`` of the drawn snapshots in that order are ``train``, the
   rest ``validation``; rows within a split are in pool order.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from dismai_data.build import Column, DatasetBuild, SourceFile
from dismai_data.figures import pyplot
from dismai_data.physics import ce
from dismai_data.raw import SHA256
from dismai_data.tasks import ALLOY_CONFIGS, ALLOY_DEFAULT_CONFIG, ALLOY_SELECTIONS, ALLOY_TEMPERATURES, alloy_config

from dismai_data.builders.common import DISMAI_BENCH_CITATION, file_split, from_files_paths, unique_ids

MULTI = True
BUILDER_VERSION = "1.0.0"
DESCRIPTION = ("Dismai-Bench Fe60Ni20Cr20 FCC alloys (256 atoms), rebuilt by cluster-expansion Monte Carlo "
               f"at {' K and '.join(map(str, ALLOY_TEMPERATURES))} K; configs {', '.join(ALLOY_CONFIGS)}")

PARAMETERS: dict[str, tuple[Any, str]] = {
    "seed": (2024, "base seed of every MC run, initial occupation, snapshot draw and split"),
    "temperatures": (list(ALLOY_TEMPERATURES), "MC temperatures, K (one wide and one narrow config each)"),
    "runs": (10, "independent MC runs per temperature"),
    "passes": (50_000, "MC passes per run (1 pass = 256 attempted swaps of two unlike atoms)"),
    "snapshot_every": (10, "passes between snapshots"),
    "burn_in": (1000, "equilibration passes discarded: snapshots at pass <= burn_in are not used"),
    "anneal_from": (1500, "during the burn_in passes, T falls geometrically from this to the run temperature "
                          "(simulated annealing, avoids quenched-in metastable order at 300 K; null = none)"),
    "n_per_config": (1500, "structures per config (train + validation)"),
    "train_fraction": (0.8, "fraction of each config in the train split (rest: validation)"),
    "sro_window": (0.1, "narrow configs: all 1NN and 2NN Warren-Cowley values within this of the pool means"),
    "workers": (2, "parallel MC processes (1 = in this process; 0 = all CPUs)"),
    "from_files": (None, "instead of MC: a folder or list (comma-separated) of the original Dismai-Bench "
                         "alloy extxyz files; config (300K/1500K, wide/narrow) is read from each file's "
                         "name or folder name, split (train/val) from the file name"),
    "map_tolerance": (0.5, "from_files: max distance (Å) of an atom from its reference site"),
}

ECI_SOURCE = ("ertekin-research-group/Dismai-Bench commit 63939334e30dc505f851c368f278650fb48e724a, "
              "benchmark/alloy/cluster_counts/analyze_cluster_count.py (ECI values; Su et al. 2024 CE)")
REF_SOURCE = ("ertekin-research-group/Dismai-Bench commit 63939334e30dc505f851c368f278650fb48e724a, "
              "benchmark/alloy/alloy_ref_struc.extxyz")

CITATION = DISMAI_BENCH_CITATION + """@article{su2024fenicr,
  note    = {Fe-Ni-Cr cluster expansion (chemical and spin ECIs); title not recorded in the raw inputs},
  author  = {Su, Tianyu and others},
  journal = {Acta Materialia},
  volume  = {276},
  pages   = {120088},
  year    = {2024}
}"""

SRO_COLUMNS: tuple[str, ...] = tuple(
    f"sro_{s}nn_{ce.SPECIES[a].lower()}_{ce.SPECIES[b].lower()}" for s in (1, 2) for a, b in ce.PAIRS)


def _columns() -> dict[str, Column]:
    from datasets import List, Value

    cols = {
        "temperature": Column(Value("float64"), "K", "Monte Carlo temperature (null for from_files rows whose "
                                                     "file name gives none)"),
        "run": Column(Value("int32"), "", "index of the independent MC run (0-based) at this temperature"),
        "pass": Column(Value("int32"), "", "MC pass after which the snapshot was taken (1 pass = 256 attempted "
                                           "swaps)"),
        "ce_energy": Column(Value("float64"), "eV/atom", "cluster-expansion formation energy per atom "
                                                         "(fenicr_ce_eci.json, chemical terms)"),
    }
    for name, label in zip(SRO_COLUMNS, ce.SRO_LABELS):
        shell, pair = label.split("_", 1)
        cols[name] = Column(Value("float64"), "", f"Warren-Cowley SRO alpha of {pair} pairs in the {shell} shell "
                                                  "(Dismai-Bench reference-script formula)")
    cols["cluster_probs"] = Column(
        List(Value("float64"), length=45), "",
        "45-number cluster-probability fingerprint: point fractions of Cr, Fe, Ni, then for shells 1NN..7NN the "
        "pair probabilities of Cr-Cr, Cr-Fe, Cr-Ni, Fe-Fe, Fe-Ni, Ni-Ni (count / shell multiplicity); label order "
        "of fenicr_ce_eci.json without 'constant' (dismai_data.physics.ce.FINGERPRINT_LABELS)")
    return cols


# --------------------------------------------------------------------------- MC runs
def _run_seeds(seed: int, temperature: int, run: int) -> tuple[int, int]:
    mc_seed, init_seed = np.random.SeedSequence([int(seed), int(temperature), int(run)]).generate_state(2)
    return int(mc_seed), int(init_seed)


def _mc_task(seed: int, temperature: int, run: int, passes: int, snapshot_every: int, burn_in: int,
             anneal_from: float | None = None) -> dict:
    """One MC run; returns the kept snapshots and their counts (runs in a worker process)."""
    mc_seed, init_seed = _run_seeds(seed, temperature, run)
    occ0 = ce.random_occupation(init_seed)
    anneal = anneal_from if anneal_from is not None and float(anneal_from) > temperature else None
    res = ce.run_mc(occ0, temperature, passes, snapshot_every, mc_seed, anneal_from=anneal, anneal_passes=burn_in)
    keep = res.passes > burn_in
    snaps = res.snapshots[keep]
    return {"temperature": temperature, "run": run, "passes": res.passes[keep], "snapshots": snaps,
            "counts": ce.cluster_counts(snaps), "accepted": res.accepted, "trials": res.trials}


def _rows_task(items: list[tuple]) -> list[dict]:
    """Structure rows of ``(id, occupation, extra)`` items (runs in a worker process)."""
    from dismai_data.structure import make_row

    rows = []
    for rid, occ, extra in items:
        species, frac, cell = ce.structure_arrays(occ)
        rows.append(make_row(species, frac, cell, rid, extra, symmetry=False))
    return rows


def _n_workers(workers: int) -> int:
    return (os.cpu_count() or 1) if workers == 0 else max(1, workers)


def _executor(workers: int) -> ProcessPoolExecutor | None:
    """A spawn-context process pool (no fork: safe whatever threads the caller runs), or
    None for in-process work."""
    n = _n_workers(workers)
    return ProcessPoolExecutor(max_workers=n, mp_context=get_context("spawn")) if n > 1 else None


def _run_all(tasks: list[tuple], workers: int, executor: ProcessPoolExecutor | None = None) -> list[dict]:
    """:func:`_mc_task` of every task, in task order (results do not depend on ``workers``)."""
    own = executor is None and _n_workers(workers) > 1 and len(tasks) > 1
    ex = _executor(workers) if own else executor
    if ex is None:
        return [_mc_task(*t) for t in tasks]
    try:
        # Slow (high-acceptance, high-T) runs first for load balance; results returned in task order.
        order = sorted(range(len(tasks)), key=lambda k: (-tasks[k][1], tasks[k][2]))
        futures = {k: ex.submit(_mc_task, *tasks[k]) for k in order}
        return [futures[k].result() for k in range(len(tasks))]
    finally:
        if own:
            ex.shutdown()


def _make_rows(jobs: list[list[tuple]], executor: ProcessPoolExecutor | None, chunk: int = 100
               ) -> list[list[dict]]:
    """Rows of several item lists (one per config split), made in chunks on the workers."""
    if executor is None:
        return [_rows_task(items) for items in jobs]
    futures = [[executor.submit(_rows_task, items[i:i + chunk]) for i in range(0, len(items), chunk)]
               for items in jobs]
    return [[row for f in fs for row in f.result()] for fs in futures]


def _draw(rng: np.random.Generator, candidates: np.ndarray, n: int, train_fraction: float
          ) -> dict[str, np.ndarray]:
    if len(candidates) < n:
        raise ValueError(f"only {len(candidates)} snapshots available, {n} requested")
    drawn = np.sort(candidates[rng.choice(len(candidates), n, replace=False)])
    perm = rng.permutation(n)
    n_train = int(round(train_fraction * n))
    return {"train": np.sort(drawn[perm[:n_train]]), "validation": np.sort(drawn[perm[n_train:]])}


def _extra(temperature, run, mc_pass, counts: np.ndarray, cex: ce.ClusterExpansion) -> dict:
    sro = ce.warren_cowley_from_counts(counts)
    extra = {"temperature": None if temperature is None else float(temperature),
             "run": None if run is None else int(run), "pass": None if mc_pass is None else int(mc_pass),
             "ce_energy": float(cex.energy_from_counts(counts))}
    extra.update({name: float(v) for name, v in zip(SRO_COLUMNS, sro)})
    extra["cluster_probs"] = [float(x) for x in ce.fingerprint_from_counts(counts)]
    return extra


def _mc_configs(p: dict) -> tuple[dict, list[str], dict]:
    ce.load_cluster_expansion()  # check the raw CE input (sha256) before starting any worker
    temps = [int(t) for t in p["temperatures"]]
    tasks = [(p["seed"], t, r, p["passes"], p["snapshot_every"], p["burn_in"], p["anneal_from"]) for t in temps
             for r in range(p["runs"])]
    executor = _executor(p["workers"])
    try:
        return _mc_configs_with(p, tasks, executor)
    finally:
        if executor is not None:
            executor.shutdown()


def _mc_configs_with(p: dict, tasks: list[tuple], executor) -> tuple[dict, list[str], dict]:
    cex = ce.load_cluster_expansion()
    temps = [int(t) for t in p["temperatures"]]
    results = _run_all(tasks, p["workers"], executor)
    jobs: list[tuple[str, str, list[tuple]]] = []
    configs: dict[str, dict[str, list[dict]]] = {}
    checks: list[str] = []
    stats: dict[str, Any] = {}
    n_sites = ce.reference_lattice().n_sites
    ref_comp = np.bincount(ce.reference_lattice().reference_occupation, minlength=3)
    for t in temps:
        res = [r for r in results if r["temperature"] == t]
        snaps = np.concatenate([r["snapshots"] for r in res])
        counts = np.concatenate([r["counts"] for r in res])
        runs = np.concatenate([np.full(len(r["passes"]), r["run"]) for r in res])
        passes = np.concatenate([r["passes"] for r in res])
        if not all(np.array_equal(np.bincount(s, minlength=3), ref_comp) for s in snaps):
            raise AssertionError("composition changed during MC")
        shell_sums = counts[:, 4:].reshape(len(counts), 7, 6).sum(axis=2)
        if not np.allclose(shell_sums, np.asarray(ce.FCC_MULTIPLICITY)[None, :]):
            raise AssertionError("pair counts do not sum to the shell multiplicities")
        sro = ce.warren_cowley_from_counts(counts)
        mean = sro.mean(axis=0)
        eligible = np.flatnonzero(np.all(np.abs(sro - mean) <= p["sro_window"], axis=1))
        acc = sum(r["accepted"] for r in res) / sum(r["trials"] for r in res)
        stats[f"{t}K"] = {"pool_snapshots": int(len(snaps)), "narrow_eligible": int(len(eligible)),
                          "acceptance_rate": round(float(acc), 4),
                          "pool_mean_sro": {lab: round(float(v), 4) for lab, v in zip(ce.SRO_LABELS, mean)},
                          "pool_mean_ce_energy": round(float(cex.energy_from_counts(counts).mean()), 6)}
        wide, narrow = ALLOY_SELECTIONS
        for kind, sub, cands in ((wide, 0, np.arange(len(snaps))), (narrow, 1, eligible)):
            rng = np.random.default_rng([int(p["seed"]), t, sub])
            try:
                split_idx = _draw(rng, cands, p["n_per_config"], p["train_fraction"])
            except ValueError as exc:
                raise ValueError(f"{alloy_config(t, kind)}: {exc} (pool {len(snaps)}; increase runs/passes or "
                                 "sro_window)") from None
            configs[alloy_config(t, kind)] = {}
            for split, idx in split_idx.items():
                items = [(f"{t}K-run{runs[k]:02d}-pass{passes[k]:06d}", snaps[k],
                          _extra(t, runs[k], passes[k], counts[k], cex)) for k in idx]
                jobs.append((alloy_config(t, kind), split, items))
        checks.append(f"{t} K: every one of {len(snaps)} pool snapshots keeps Fe154 Ni51 Cr51 and its pair "
                      f"counts sum to the FCC shell multiplicities z_s/2")
        checks.append(f"{t} K narrow: all rows have the 12 1NN/2NN Warren-Cowley values within "
                      f"{p['sro_window']} of the pool means ({len(eligible)} of {len(snaps)} snapshots eligible)")
    assert n_sites == 256
    for (config, split, _), rows in zip(jobs, _make_rows([j[2] for j in jobs], executor)):
        configs[config][split] = rows
    return configs, checks, stats


# --------------------------------------------------------------------------- from files
_T, _SEL = "|".join(map(str, ALLOY_TEMPERATURES)), "|".join(ALLOY_SELECTIONS)
_CONFIG_RE = re.compile(rf"({_T})\s*K.*?({_SEL})|({_SEL}).*?({_T})\s*K", re.IGNORECASE)


def _file_config(path: Path) -> tuple[str, int]:
    text = f"{path.parent.name}/{path.name}"  # the file name and its folder, e.g. alloy_300K_narrow/train.extxyz
    m = _CONFIG_RE.search(text)
    if not m:
        raise ValueError(f"{path}: cannot tell the config (300K/1500K and wide/narrow) from the file or folder "
                         "name")
    t = int(m.group(1) or m.group(4))
    kind = (m.group(2) or m.group(3)).lower()
    return alloy_config(t, kind), t





def _file_configs(p: dict) -> tuple[dict, list[str], dict]:
    from dismai_data.io import read_extxyz
    from dismai_data.structure import make_row

    cex = ce.load_cluster_expansion()
    configs: dict[str, dict[str, list[dict]]] = {}
    n_total = 0
    for path in from_files_paths(p["from_files"]):
        config, t = _file_config(path)
        split = file_split(path)
        rows = read_extxyz(path, symmetry=False)
        out = configs.setdefault(config, {}).setdefault(split, [])
        for i, row in enumerate(rows):
            occ, unassigned = ce.occupation_from_row(row, tol=p["map_tolerance"])
            if unassigned or np.any(occ < 0):
                raise ValueError(f"{path} frame {i}: {unassigned} atoms are not within {p['map_tolerance']} Å of "
                                 "a free reference site: not a structure of the Dismai-Bench alloy lattice")
            counts = ce.cluster_counts(occ)
            info_run = row.get("run")
            info_pass = row.get("pass")
            extra = _extra(t, info_run if isinstance(info_run, int) else None,
                           info_pass if isinstance(info_pass, int) else None, counts, cex)
            # keep the file's own atom order and positions; only the computed columns are added
            out.append(make_row(row["species"], row["frac_coords"], row["lattice"], row["id"], extra,
                                index=i, symmetry=False))
            n_total += 1
    for config in configs.values():
        for rows in config.values():
            unique_ids(rows)
    checks = [f"from_files: all {n_total} structures map one atom to each of the 256 reference sites "
              f"(within {p['map_tolerance']} Å)"]
    return configs, checks, {}


# --------------------------------------------------------------------------- build
def _params(params: dict) -> dict:
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise TypeError(f"unknown alloy parameter(s): {', '.join(sorted(unknown))}; known: "
                        f"{', '.join(PARAMETERS)}")
    p = {k: v[0] for k, v in PARAMETERS.items()}
    p.update(params)
    for k in ("seed", "runs", "passes", "snapshot_every", "burn_in", "n_per_config", "workers"):
        p[k] = int(p[k])
    p["temperatures"] = [int(t) for t in (p["temperatures"] if isinstance(p["temperatures"], (list, tuple))
                                          else str(p["temperatures"]).split(","))]
    p["sro_window"] = float(p["sro_window"])
    if isinstance(p["from_files"], (list, tuple)):
        p["from_files"] = [str(x) for x in p["from_files"]]
    elif p["from_files"] is not None:
        p["from_files"] = str(p["from_files"])
    p["anneal_from"] = None if p["anneal_from"] in (None, "", "none", "None") else float(p["anneal_from"])
    p["train_fraction"] = float(p["train_fraction"])
    p["map_tolerance"] = float(p["map_tolerance"])
    if p["passes"] % p["snapshot_every"] or p["passes"] <= p["burn_in"]:
        raise ValueError("passes must be a multiple of snapshot_every and larger than burn_in")
    if not 0 < p["train_fraction"] < 1:
        raise ValueError("train_fraction must be in (0, 1)")
    return p


def _summary(p: dict, from_files: bool) -> str:
    if from_files:
        return ("Fe60Ni20Cr20 FCC alloy structures (256 atoms) of Dismai-Bench (Yong, Su and Ertekin, Digital "
                "Discovery 2024), read from the user's copies of the original Zenodo extxyz files "
                "(10.5281/zenodo.12710372) by dismai-data's alloy builder (`--set from_files=...`); structures "
                "and splits are the originals, and the CE energy, Warren-Cowley SRO and cluster fingerprint "
                "columns were computed here with the same cluster expansion.")
    full = (p["runs"] == 10 and p["passes"] == 50_000 and p["snapshot_every"] == 10 and p["n_per_config"] == 1500)
    size = "the paper's full size" if full else (
        f"a reduced size ({p['runs']} runs x {p['passes']} passes, {p['n_per_config']} structures per config)")
    return ("Fe60Ni20Cr20 FCC alloys (Fe154 Ni51 Cr51 on the 256-site 4x4x4 conventional cell, a = 3.6 Å) of "
            "Dismai-Bench (Yong, Su and Ertekin, Digital Discovery 2024), **rebuilt here** by dismai-data's "
            "alloy builder with cluster-expansion Monte Carlo, because the original datasets (Zenodo "
            "10.5281/zenodo.12710372) cannot be reached. The recipe is the paper's (same CE of Su et al. 2024, "
            "chemical terms; canonical Metropolis with Kawasaki swaps; 300 K and 1500 K; "
            f"{p['runs']} runs x {p['passes']} passes per temperature, a snapshot every {p['snapshot_every']} "
            f"passes; wide = no SRO filter, narrow = 1NN/2NN Warren-Cowley values within ±{p['sro_window']} of "
            f"the averages), at {size}, but the structures are not the paper's: our own seeded runs, the first "
            f"{p['burn_in']} passes of each run (an anneal from {p['anneal_from']} K for the 300 K runs) discarded "
            "as equilibration (the paper does not say how it equilibrated), our own "
            "seeded draw of the 1500 snapshots and of the 80/20 split, the narrow window centred on the mean "
            "over all kept snapshots of that temperature, and atoms listed by species (Cr, Fe, Ni) like "
            "`alloy_ref_struc.extxyz`. Statistics (SRO, energies) match the paper's recipe, not its files.")


def _provenance(p: dict, stats: dict, from_files: bool) -> str:
    if from_files:
        return ("Rows read with dismai_data.io.read_extxyz from the given files; each atom mapped to the nearest "
                f"site of alloy_ref_struc.extxyz within {p['map_tolerance']} Å (every site filled exactly once, "
                "else the build fails); config from '300K'/'1500K' and 'wide'/'narrow' in the file or folder "
                "name, split from 'train'/'val' in the file name; temperature from the path, run/pass from the "
                "frame info when "
                "present (else null). Columns computed by dismai_data.physics.ce exactly as for the rebuilt data.")
    lines = [
        "Cluster expansion: fenicr_ce_eci.json (46 ECIs in eV/atom; pair clusters to the 7th FCC shell, counts as "
        "its count_definition), evaluated by dismai_data.physics.ce on the sites of alloy_ref_struc.extxyz "
        "(fractional "
        "coordinates snapped to the exact 1/8 grid, cell 14.4 Å cubic).",
        "Monte Carlo: canonical Metropolis with Kawasaki swaps (dismai_data.physics.ce.run_mc, numba). A trial "
        "draws two "
        "sites uniformly, redrawing while they hold the same species (uniform, symmetric proposal over unlike "
        "pairs); 1 pass = 256 trials. The energy change is computed from the local environments (per-site pair "
        "fields over the 134 neighbours in shells 1-7, corrected when the two sites are neighbours); "
        "tests/test_alloy.py checks it "
        "against differences of full CE energies.",
        "Acceptance energy: the JSON energy is per atom; Metropolis uses the change of the TOTAL cell energy, "
        "dE = 256 x d(E per atom), i.e. accept with min(1, exp(-dE / k_B T)), k_B = 8.617333262e-5 eV/K. "
        "This is the physical canonical ensemble of the 256-atom cell and the only reading that reproduces the "
        "paper's Fig. S1 (strong SRO at 300 K); with the per-atom change the effective temperature would be "
        "256 times higher and 300 K would be nearly random.",
        f"Runs: {p['runs']} per temperature, {p['passes']} passes each, snapshot after every "
        f"{p['snapshot_every']} passes; each run starts from the reference composition permuted at random. "
        "Seeds: ss = numpy.random.SeedSequence([seed, T, run]).generate_state(2); MC RNG seeded with ss[0], "
        "initial permutation numpy.random.default_rng(ss[1]).permutation(reference occupation).",
        f"Equilibration: snapshots at pass <= {p['burn_in']} are discarded. During those passes the temperature "
        f"falls geometrically from {p['anneal_from']} K to the run temperature (simulated annealing; without it, "
        "about 1 in 16 quenched 300 K runs stayed in a metastable ordering 2.6 meV/atom above the others for all "
        "50 000 passes, which also emptied the narrow filter). The pool of a temperature is all remaining "
        "snapshots of all its runs, run-major and pass ascending.",
        f"Draw: wide = numpy.random.default_rng([seed, T, 0]).choice(len(pool), {p['n_per_config']}, "
        "replace=False); narrow = the same with default_rng([seed, T, 1]) over the pool snapshots whose 12 "
        f"Warren-Cowley values (1NN and 2NN, 6 pairs each) all lie within ±{p['sro_window']} of their means over "
        "the whole pool of that temperature. A snapshot may appear in both the wide and the narrow config "
        "(same id).",
        "Structure rows: the 256 reference sites, atoms ordered by species (Cr, Fe, Ni) and by reference-site "
        "index within a species; lattice exactly 14.4 Å cubic; spglib symmetry not computed (null).",
        "Per-temperature statistics: " + "; ".join(
            f"{t}: {s['pool_snapshots']} pool snapshots, {s['narrow_eligible']} narrow-eligible, acceptance "
            f"{s['acceptance_rate']}, mean CE energy {s['pool_mean_ce_energy']} eV/atom" for t, s in stats.items()),
    ]
    return "\n\n".join(lines)


def build(name: str = "alloy", **params) -> DatasetBuild:
    """Build the four alloy configs (or read the originals with ``from_files``)."""
    p = _params(params)
    from_files = p["from_files"] not in (None, "", [])
    configs, checks, stats = _file_configs(p) if from_files else _mc_configs(p)
    parameters = dict(p)
    if not from_files:
        parameters.update({"k_B_eV_per_K": ce.K_B, "acceptance_energy": "total (256 x per-atom change)",
                           "statistics": stats})
    split_note = ("Each config is split 80/20 train/validation by a seeded permutation of its drawn snapshots "
                  "(see provenance); train and validation never share a snapshot." if not from_files else
                  "Splits as in the original files.")
    return DatasetBuild(
        name=name,
        pretty_name="Dismai-Bench Fe60Ni20Cr20 alloys (rebuilt)",
        version="1.0",
        builder_version=BUILDER_VERSION,
        license="mit",
        summary=_summary(p, from_files),
        configs=configs,
        columns=_columns(),
        sources=[SourceFile(name=ce.ECI_FILE, sha256=SHA256[ce.ECI_FILE], source=ECI_SOURCE, licence="MIT"),
                 SourceFile(name=ce.REFERENCE_FILE, sha256=SHA256[ce.REFERENCE_FILE], source=REF_SOURCE,
                            licence="MIT")],
        parameters=parameters,
        citation=CITATION,
        provenance=_provenance(p, stats, from_files),
        split_note=split_note,
        tags=["alloys", "cluster-expansion", "monte-carlo", "short-range-order", "generative-models"],
        property_column="ce_energy",
        property_label="CE formation energy (eV/atom)",
        rebuilt=not from_files,
        default_config=ALLOY_DEFAULT_CONFIG if ALLOY_DEFAULT_CONFIG in configs else sorted(configs)[0],
        checks=checks,
        extra_figures=[_card_sro_figure],
    )


# --------------------------------------------------------------------------- figure
def _card_sro_figure(build: DatasetBuild, folder) -> str:
    """The SRO figure in a dataset folder's figures/ (card-relative path)."""
    sro_figure(build, Path(folder) / "sro.png")
    return "figures/sro.png"


def sro_figure(build: DatasetBuild, path) -> Path:
    """PNG of the 1NN and 2NN Warren-Cowley distributions (violins, all rows of a config)
    of every config: one row of panels per shell, one violin per (pair, config)."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(build.configs)
    fig, axes = plt.subplots(2, 1, figsize=(9, 7), sharex=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / max(1, len(names))
    for ax, shell in zip(axes, (1, 2)):
        cols = [c for c in SRO_COLUMNS if c.startswith(f"sro_{shell}nn")]
        for ci, config in enumerate(names):
            rows = [r for split in build.configs[config].values() for r in split]
            data = [[r[c] for r in rows] for c in cols]
            pos = np.arange(len(cols)) + (ci - (len(names) - 1) / 2) * width
            if rows:
                parts = ax.violinplot(data, positions=pos, widths=width * 0.95, showmedians=True)
                for body in parts["bodies"]:
                    body.set_facecolor(colors[ci % len(colors)])
                    body.set_alpha(0.6)
            ax.plot([], [], color=colors[ci % len(colors)], lw=6, alpha=0.6, label=config)
        ax.axhline(0, color="gray", ls=":", lw=1)
        ax.set_xticks(np.arange(len(cols)))
        ax.set_xticklabels(ce.PAIR_NAMES)
        ax.set_ylabel(f"{shell}NN Warren-Cowley alpha")
        ax.legend(fontsize=8, ncol=len(names))
    fig.suptitle("Warren-Cowley short-range order per config")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
