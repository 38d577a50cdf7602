"""Generic metrics: bucketed matching gives the same decisions as plain StructureMatcher,
uniqueness/novelty/coverage/classes on constructed cases, SMACT validity, and identical
results over local processes and a two-worker Dask LocalCluster."""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("DISMAI_NO_PROGRESS", "1")

from dismai_data.evaluation.generic import (MATCHER_KWARGS, compositional_valid,  # noqa: E402
                                            generic_metrics)
from dismai_data.io import row_from_poscar  # noqa: E402
from dismai_data.structure import make_row, row_to_structure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JARVIS_ZIP = ROOT / "builders" / "raw" / "jarvis_supercon_3d" / "jarvis_leaderboard_atomgen_split.json.zip"


@pytest.fixture(scope="module")
def rows():
    with zipfile.ZipFile(JARVIS_ZIP) as z:
        d = json.loads(z.read(z.namelist()[0]))
    train = [row_from_poscar(p, i) for i, p in sorted(d["train"].items())[:80]]
    test = [row_from_poscar(p, i) for i, p in sorted(d["test"].items())[:20]]
    return train, test


def _shake(row, noise, seed, rid):
    rng = np.random.default_rng(seed)
    frac = (np.asarray(row["frac_coords"]) + rng.normal(0, noise, (row["num_atoms"], 3))) % 1.0
    return make_row(row["species"], frac, np.asarray(row["lattice"]) * 1.03, rid)


def _substitute(row, rid):
    """The same structure with every element replaced by another (same prototype)."""
    swap = {"Nb": "Ta", "Ta": "Nb", "Mo": "W", "W": "Mo", "V": "Nb", "Ti": "Zr", "Zr": "Hf", "Hf": "Ti",
            "Al": "Ga", "Ga": "In", "O": "S", "S": "Se", "Se": "Te", "Li": "Na", "Na": "K", "Mg": "Ca",
            "Ca": "Sr", "Sr": "Ba", "Ba": "Sr", "C": "Si", "Si": "Ge", "N": "P", "B": "Al"}
    species = [swap.get(s, s) for s in row["species"]]
    return make_row(species, row["frac_coords"], row["lattice"], rid)


@pytest.fixture(scope="module")
def generated(rows):
    train, test = rows
    gen = []
    gen += [make_row(r["species"], r["frac_coords"], r["lattice"], f"dup-{i}") for i, r in enumerate(train[:8])]
    gen += [_shake(r, 0.02, i, f"shake-{i}") for i, r in enumerate(train[8:16])]
    gen += [_shake(r, 0.2, i, f"big-{i}") for i, r in enumerate(train[16:24])]
    gen += [_substitute(r, f"sub-{i}") for i, r in enumerate(train[24:34])]
    gen += [make_row(r["species"], r["frac_coords"], r["lattice"], f"test-{i}") for i, r in enumerate(test[:6])]
    gen += [make_row(gen[0]["species"], gen[0]["frac_coords"], gen[0]["lattice"], "again-0")]  # not unique
    return gen


@pytest.fixture(scope="module")
def full(rows, generated):
    train, test = rows
    return generic_metrics(generated, len(generated), train, test)


def test_bucketed_decisions_equal_plain_structure_matcher(rows, generated, full):
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Composition

    train, test = rows
    res = full
    sm = StructureMatcher(**MATCHER_KWARGS)
    gs = [row_to_structure(r) for r in generated]
    ts = [row_to_structure(r) for r in train]
    qs = [row_to_structure(r) for r in test]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        novel = [not any(sm.fit(g, t) for t in ts) for g in gs]  # brute force, no bucketing, no pre-reduction
        unique = [not any(sm.fit(gs[j], gs[i]) for j in range(i)) for i in range(len(gs))]
        recall = [any(sm.fit(g, q) for g in gs) for q in qs]
        subst = []
        for g, gr in zip(gs, generated):
            key = (Composition(gr["reduced_formula"]).anonymized_formula, gr["spacegroup_number"])
            subst.append(any(sm.fit_anonymous(g, t) for t, tr in zip(ts, train)
                             if (Composition(tr["reduced_formula"]).anonymized_formula,
                                 tr["spacegroup_number"]) == key))
    per = res["per_row"]
    assert [not per[r["id"]]["novel"] for r in generated] == [not x for x in novel]
    assert [per[r["id"]]["unique"] for r in generated] == unique
    assert res["metrics"]["coverage_recall"].value == pytest.approx(np.mean(recall))
    classes = [per[r["id"]]["novelty_class"] for r in generated]
    expect = ["duplicate" if not n else ("substitution-derived" if s else "unmatched") for n, s in zip(novel, subst)]
    assert classes == expect
    # and the constructed cases land where they should
    assert all(per[f"dup-{i}"]["novelty_class"] == "duplicate" for i in range(8))
    assert all(per[f"shake-{i}"]["novelty_class"] == "duplicate" for i in range(8))
    assert sum(per[f"sub-{i}"]["novelty_class"] == "substitution-derived" for i in range(10)) >= 8
    assert per["again-0"]["unique"] is False and per["dup-0"]["unique"] is True
    assert sum(per[f"big-{i}"]["novel"] for i in range(8)) >= 4


def test_train_against_itself_and_counts(rows):
    train, test = rows
    res = generic_metrics(train[:30], 30, train, test)
    m = res["metrics"]
    assert m["novelty"].value == 0.0 and m["novelty_class_duplicate"].value == 1.0
    assert m["validity_structural"].value == 1.0
    groups = res["groups"]["novelty_classes_per_crystal_system"]
    assert sum(sum(v.values()) for v in groups.values()) == 30
    # Wasserstein of a set with itself is 0, of a rescaled set is not
    same = generic_metrics(test, len(test), train, test)["metrics"]
    assert same["wasserstein_density"].value == 0.0 and same["wasserstein_nelements"].value == 0.0
    assert same["coverage_recall"].value == 1.0 and same["coverage_precision"].value == 1.0
    big = [make_row(r["species"], r["frac_coords"], np.asarray(r["lattice"]) * 1.3, r["id"]) for r in test]
    assert generic_metrics(big, len(big), train, test)["metrics"]["wasserstein_density"].value > 0.5


def test_smact_compositional_validity():
    assert compositional_valid("NaCl") and compositional_valid("Fe2O3") and compositional_valid("NbTi")
    assert not compositional_valid("NaCl2") and not compositional_valid("Na2O3")


def test_processes_and_dask_cluster_give_identical_results(rows, generated, full):
    from distributed import LocalCluster

    train, test = rows
    serial = full
    procs = generic_metrics(generated, len(generated), train, test, workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            dask = generic_metrics(generated, len(generated), train, test, scheduler=cluster.scheduler_address)
    for other in (procs, dask):
        assert other["per_row"] == serial["per_row"]
        for k, v in serial["metrics"].items():
            assert other["metrics"][k] == v, k


def test_without_novelty_classes_same_novelty(rows, generated, full):
    train, test = rows
    quick = generic_metrics(generated, len(generated), train, test, novelty_classes=False)
    for k in ("novelty", "uniqueness", "coverage_recall", "coverage_precision", "novelty_class_duplicate"):
        assert quick["metrics"][k] == full["metrics"][k]
    assert "novelty_class_substitution" not in quick["metrics"]  # not reported as 0
    assert {v["novelty_class"] for v in quick["per_row"].values()} <= {"duplicate", "novel (classes not computed)"}


def _raw_split(name, zipname):
    with zipfile.ZipFile(ROOT / "builders" / "raw" / name / zipname) as z:
        return json.loads(z.read(z.namelist()[0]))


def _poscar_formula(poscar: str) -> str:
    """Reduced formula from a POSCAR's species and count lines (no structure parsing)."""
    from pymatgen.core import Composition

    lines = poscar.replace("\\n", "\n").splitlines()  # the raw split stores literal \n
    return Composition(dict(zip(lines[5].split(), map(int, lines[6].split())))).reduced_formula


def test_cached_matcher_same_decisions_as_plain_fit_on_perov5_and_carbon24():
    """The cached strict match on pre-reduced structures against plain ``StructureMatcher.fit``
    (which reduces both structures itself) on same-formula pairs of real dataset rows:
    Perov-5 validation vs train (same formula, mostly different anion orderings), shaken
    copies (matches and near misses), and Carbon-24 pairs with equal reduced site counts."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from dismai_data.evaluation.generic import fits, matcher, reduce_for_matching

    pairs = []
    d = _raw_split("perov5", "perov5_atomgen_split.json.zip")
    train = {}
    for i, p in sorted(d["train"].items())[:4000]:
        train.setdefault(_poscar_formula(p), []).append((i, p))
    for i, p in sorted(d["val"].items()):
        for j, q in train.get(_poscar_formula(p), []):
            t = row_from_poscar(q, j)
            pairs.append((row_from_poscar(p, i), t))
            pairs.append((_shake(t, 0.05, len(pairs), "s"), t))
        if len(pairs) >= 40:
            break
    flat = [row_from_poscar(p, i) for rs in list(train.values())[:200] for i, p in rs[:1]]
    rng = np.random.default_rng(1)
    for k in rng.choice(len(flat), 10, replace=False):
        pairs.append((_shake(flat[k], 0.15, int(k), "big"), flat[k]))
    d = _raw_split("carbon24", "carbon24_atomgen_split.json.zip")
    carbon = [row_from_poscar(p, i) for i, p in sorted(d["train"].items())[:150]]
    red = [reduce_for_matching(row_to_structure(r)) for r in carbon]
    by_n: dict[int, list[int]] = {}
    for i, s in enumerate(red):
        by_n.setdefault(len(s), []).append(i)
    n_carbon = 0
    for idx in by_n.values():
        for a, b in zip(idx[:-1], idx[1:]):
            if n_carbon < 30:
                pairs.append((carbon[a], carbon[b]))
                pairs.append((_shake(carbon[a], 0.03, a, "c"), carbon[a]))
                n_carbon += 2
    plain = StructureMatcher(**MATCHER_KWARGS)
    fast = matcher()
    got, want = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, b in pairs:
            sa, sb = row_to_structure(a), row_to_structure(b)
            want.append(bool(plain.fit(sa, sb)))
            got.append(fits(fast, reduce_for_matching(sa), reduce_for_matching(sb)))
    assert got == want
    assert 10 <= sum(want) <= len(want) - 10  # both decisions are exercised
