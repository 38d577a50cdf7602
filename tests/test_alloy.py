"""Fe-Ni-Cr cluster-expansion physics (dismai_data.physics.ce) and the alloy builder.

References used here are independent of dismai_data.physics.ce's shell tables: ASE neighbour
lists and plain distance arithmetic, full-energy differences, hand-written formulas.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dismai_data.physics import ce
from dismai_data.raw import raw_file

A = 3.6


# --------------------------------------------------------------------------- references
def _ref_atoms():
    from ase.io import read

    return read(str(raw_file(ce.REFERENCE_FILE)), format="extxyz")


def _eci_json():
    return json.loads(raw_file(ce.ECI_FILE).read_text())


def _brute_counts(atoms, symbols=None):
    """{label: count} by the JSON count_definition, from ASE's neighbour list: every
    ordered (site, neighbour) pair within 7 shells, shell from the distance."""
    from ase.neighborlist import neighbor_list

    sym = list(symbols if symbols is not None else atoms.get_chemical_symbols())
    n = len(sym)
    i, j, d = neighbor_list("ijd", atoms, A * math.sqrt(3.5) + 0.1)
    counts: dict[str, float] = {}
    for x in ("Cr", "Fe", "Ni"):
        counts[f"0NN_{x}"] = sym.count(x) / n
    for s in range(1, 8):
        for p in ("Cr-Cr", "Cr-Fe", "Cr-Ni", "Fe-Fe", "Fe-Ni", "Ni-Ni"):
            counts[f"{s}NN_{p}"] = 0.0
    shell = np.rint(2 * (d / A) ** 2).astype(int)  # d = a sqrt(s/2)
    assert np.allclose(d, A * np.sqrt(shell / 2), atol=1e-6)
    for a, b, s in zip(i, j, shell):
        key = "-".join(sorted((sym[a], sym[b])))
        counts[f"{s}NN_{key}"] += 1.0 / (2 * n)
    return counts, i, j, shell


def _brute_energy(counts):
    data = _eci_json()
    return data["eci"][0] + sum(e * counts[lab] for lab, e in zip(data["labels"][1:], data["eci"][1:]))


def _swapped(occ, i, j):
    out = occ.copy()
    out[i], out[j] = occ[j], occ[i]
    return out


# --------------------------------------------------------------------------- lattice and counts
def test_reference_lattice_shells():
    lat = ce.reference_lattice()
    assert lat.n_sites == 256 and lat.neighbors.shape == (256, 134)
    assert np.allclose(lat.cell, np.eye(3) * 14.4)
    assert np.bincount(lat.reference_occupation).tolist() == [51, 154, 51]
    # shells from plain distances (ASE), compared to the tables
    _, i, j, shell = _brute_counts(_ref_atoms())
    assert len(i) == 256 * 134
    assert np.array_equal(lat.shell_matrix[i, j], shell - 1)
    assert all(np.bincount(shell[i == k], minlength=8)[1:].tolist() == list(ce.FCC_Z) for k in (0, 77, 255))


def test_reference_energy_equals_hand_count():
    atoms = _ref_atoms()
    counts, *_ = _brute_counts(atoms)
    e_hand = _brute_energy(counts)
    occ = ce.reference_lattice().reference_occupation
    assert ce.formation_energy(occ) == pytest.approx(e_hand, abs=1e-13)
    assert e_hand == pytest.approx(-0.0954541837, abs=1e-9)
    mine = ce.cluster_counts(occ)
    labels = _eci_json()["labels"]
    assert mine[0] == 1.0
    assert np.allclose(mine[1:], [counts[lab] for lab in labels[1:]], atol=1e-14)
    # energy is per atom: the cell total is 256 x
    assert ce.total_energy(occ) == pytest.approx(256 * e_hand, abs=1e-11)


def test_random_occupations_match_hand_count_and_fingerprint():
    atoms = _ref_atoms()
    labels = _eci_json()["labels"]
    for seed in (1, 2):
        occ = ce.random_occupation(seed)
        sym = ce.decode(occ)
        counts, *_ = _brute_counts(atoms, sym)
        assert ce.formation_energy(occ) == pytest.approx(_brute_energy(counts), abs=1e-13)
        fp = ce.cluster_probabilities(occ)
        assert fp.shape == (45,)
        assert list(ce.FINGERPRINT_LABELS) == labels[1:]
        for k, lab in enumerate(labels[1:]):
            s = int(lab.split("NN")[0])
            mult = 1 if s == 0 else ce.FCC_Z[s - 1] / 2
            assert fp[k] == pytest.approx(counts[lab] / mult, abs=1e-14)
        for s in range(7):  # pair probabilities of a shell sum to 1
            assert fp[3 + 6 * s: 9 + 6 * s].sum() == pytest.approx(1.0, abs=1e-12)


def test_warren_cowley_matches_conditional_probabilities():
    """alpha_AB = 1 - P(B | A) / c_B from ASE neighbour lists (full lattice: the reference
    script's symmetrised form equals this)."""
    atoms = _ref_atoms()
    occ = ce.random_occupation(5)
    sym = np.array(ce.decode(occ))
    _, i, j, shell = _brute_counts(atoms, sym)
    c = {x: np.mean(sym == x) for x in ce.SPECIES}
    got = ce.warren_cowley(occ)
    k = 0
    for s in (1, 2):
        m = shell == s
        for a, b in ce.PAIRS:
            A_, B_ = ce.SPECIES[a], ce.SPECIES[b]
            from_a = m & (sym[i] == A_)
            p_b_given_a = np.mean(sym[j[from_a]] == B_)
            assert got[k] == pytest.approx(1 - p_b_given_a / c[B_], abs=1e-12), (s, A_, B_)
            k += 1
    # the literal reference-script formula on hand counts (A != B and A = B)
    cnt = ce.cluster_counts(occ)
    n = {p: cnt[4 + q] for q, p in enumerate(ce.PAIR_NAMES)}
    cr, fe, ni = cnt[1:4]
    a_crfe = 1 - 0.5 * (n["Cr-Fe"] / (2 * n["Fe-Fe"] + n["Fe-Ni"] + n["Cr-Fe"]) / cr
                        + n["Cr-Fe"] / (2 * n["Cr-Cr"] + n["Cr-Ni"] + n["Cr-Fe"]) / fe)
    a_nini = 1 - 2 * n["Ni-Ni"] / (2 * n["Ni-Ni"] + n["Cr-Ni"] + n["Fe-Ni"]) / ni
    assert got[1] == pytest.approx(a_crfe, abs=1e-14)
    assert got[5] == pytest.approx(a_nini, abs=1e-14)


# --------------------------------------------------------------------------- Monte Carlo
def test_swap_energy_change_equals_full_energy_difference():
    rng = np.random.default_rng(11)
    lat = ce.reference_lattice()
    n_checked = n_neighbours = 0
    for seed in range(4):
        occ = ce.random_occupation(100 + seed)
        e0 = ce.total_energy(occ)
        for _ in range(100):
            i = int(rng.integers(256))
            j = int(lat.neighbors[i, rng.integers(134)]) if rng.random() < 0.5 else int(rng.integers(256))
            if occ[i] == occ[j]:
                continue
            d = ce.swap_energy_change(occ, i, j)
            assert d == pytest.approx(ce.total_energy(_swapped(occ, i, j)) - e0, abs=1e-10)
            n_checked += 1
            n_neighbours += lat.shell_matrix[i, j] >= 0
    assert n_checked > 200 and n_neighbours > 80


@pytest.mark.parametrize("temperature", [300.0, 1500.0, 1e6])
def test_mc_kernel_energy_bookkeeping(temperature):
    """Sum of the kernel's accepted dE (incremental local fields, no rebuild) equals the
    difference of full energies; composition conserved."""
    occ0 = ce.random_occupation(3)
    passes = 40
    res = ce.run_mc(occ0, temperature, passes, passes, seed=9)
    assert res.accepted > 100
    assert res.trials == passes * 256
    assert np.array_equal(np.bincount(res.final, minlength=3), np.bincount(occ0, minlength=3))
    assert np.array_equal(res.snapshots[-1], res.final)
    assert res.energy_change == pytest.approx(ce.total_energy(res.final) - ce.total_energy(occ0), abs=1e-9)


def test_mc_is_deterministic_and_lowers_energy_at_300K():
    occ0 = ce.random_occupation(4)
    r1 = ce.run_mc(occ0, 300, 200, 10, seed=5)
    r2 = ce.run_mc(occ0, 300, 200, 10, seed=5)
    r3 = ce.run_mc(occ0, 300, 200, 10, seed=6)
    assert np.array_equal(r1.snapshots, r2.snapshots)
    assert not np.array_equal(r1.snapshots, r3.snapshots)
    assert ce.formation_energy(r1.final) < ce.formation_energy(occ0) - 0.02


def test_anneal_schedule():
    t = ce.anneal_temperatures(300, 100, 1500, 50)
    assert t[0] == 1500 and np.all(np.diff(t[:50]) < 0) and np.all(t[50:] == 300) and t[49] > 300


def _sro_trend(runs: int, passes: int, burn_in: int):
    out = {}
    for temp in (300, 1500):
        sro, energy = [], []
        for r in range(runs):
            res = ce.run_mc(ce.random_occupation(10 * temp + r), temp, passes, 10, seed=r,
                            anneal_from=1500 if temp < 1500 else None, anneal_passes=burn_in)
            a = ce.analyze(res.snapshots[res.passes > burn_in])
            sro.append(a["sro"])
            energy.append(a["energy"])
        out[temp] = (np.concatenate(sro), np.concatenate(energy))
    return out


def _check_sro_trend(out):
    sro300, e300 = out[300]
    sro1500, e1500 = out[1500]
    m300, m1500 = sro300.mean(axis=0), sro1500.mean(axis=0)
    # paper Fig. S1: 300 K away from zero, 1500 K near zero
    assert np.mean(np.abs(m300)) > 0.5
    assert np.mean(np.abs(m1500)) < 0.12
    assert np.all(np.abs(m1500) < 0.3)
    assert m300[0] > 0.8  # 1NN Cr-Cr: Cr avoids Cr
    assert m300[6] < -2.0  # 2NN Cr-Cr: Cr prefers Cr at the 2NN distance
    assert np.sum(np.abs(m300) > 0.2) >= 6
    assert e300.mean() < e1500.mean() - 0.02


def test_sro_300K_away_from_zero_1500K_near_zero_small():
    _check_sro_trend(_sro_trend(runs=2, passes=1500, burn_in=500))


@pytest.mark.slow
def test_sro_trend_full_length():
    _check_sro_trend(_sro_trend(runs=10, passes=50_000, burn_in=1000))


# --------------------------------------------------------------------------- builder
SMALL = dict(runs=2, passes=600, burn_in=200, snapshot_every=5, n_per_config=10, sro_window=0.15, workers=1)


@pytest.fixture(scope="module")
def small_build():
    from dismai_data.builders import alloy

    return alloy.build(**SMALL)


def test_small_build_configs_splits_columns(small_build):
    from dismai_data.builders import alloy

    b = small_build
    assert b.name == "alloy" and b.rebuilt and b.property_column == "ce_energy"
    assert set(b.configs) == {"300K_wide", "300K_narrow", "1500K_wide", "1500K_narrow"}
    assert "rebuilt here" in b.summary
    assert {s.name for s in b.sources} == {ce.ECI_FILE, ce.REFERENCE_FILE}
    for key in alloy.PARAMETERS:
        assert key in b.parameters
    expected_cols = {"temperature", "run", "pass", "ce_energy", "cluster_probs", *alloy.SRO_COLUMNS}
    assert set(b.columns) == expected_cols and len(alloy.SRO_COLUMNS) == 12
    stats = b.parameters["statistics"]
    for name, splits in b.configs.items():
        assert list(splits) == ["train", "validation"]
        assert [len(splits["train"]), len(splits["validation"])] == [8, 2]
        ids = [r["id"] for rows in splits.values() for r in rows]
        assert len(set(ids)) == 10
        temp = int(name.split("K")[0])
        mean = np.array(list(stats[f"{temp}K"]["pool_mean_sro"].values()))
        for r in (r for rows in splits.values() for r in rows):
            assert r["num_atoms"] == 256 and r["formula"] == "Cr51 Fe154 Ni51"
            assert r["temperature"] == temp and r["pass"] > SMALL["burn_in"] and r["pass"] % 5 == 0
            assert set(expected_cols) <= set(r)
            # the columns agree with the structure itself
            occ, unassigned = ce.occupation_from_row(r)
            assert unassigned == 0 and np.all(occ >= 0)
            a = ce.analyze(occ)
            assert r["ce_energy"] == pytest.approx(a["energy"][0], abs=1e-14)
            assert np.allclose(r["cluster_probs"], a["fingerprint"][0], atol=1e-14)
            sro = np.array([r[c] for c in alloy.SRO_COLUMNS])
            assert np.allclose(sro, a["sro"][0], atol=1e-14)
            if name.endswith("narrow"):
                assert np.all(np.abs(sro - mean) <= SMALL["sro_window"] + 1e-3)
    # schema: rows convert to the declared arrow table
    from dismai_data.structure import rows_to_table

    table = rows_to_table(b.configs["300K_wide"]["train"], b.extra_features)
    assert table.num_rows == 8 and table.schema.field("cluster_probs").type.list_size == 45


def test_small_build_is_deterministic(small_build):
    from dismai_data.builders import alloy

    again = alloy.build(**SMALL)
    assert again.configs == small_build.configs
    assert again.parameters == small_build.parameters
    other = alloy.build(**{**SMALL, "seed": 7, "temperatures": [300]})
    assert set(other.configs) == {"300K_wide", "300K_narrow"}
    assert other.configs["300K_wide"]["train"] != small_build.configs["300K_wide"]["train"]


def test_parallel_build_equals_serial_build(small_build):
    """workers=2 (MC runs and row making in spawned processes) gives the same rows."""
    from dismai_data.builders import alloy

    assert alloy.build(**{**SMALL, "workers": 2}).configs == small_build.configs


def test_small_build_writes(tmp_path, small_build):
    from dismai_data.builders.write import write_dataset
    from dismai_data.io import read_parquet_rows

    out = write_dataset(small_build, tmp_path / "alloy", figures=False)
    rows = read_parquet_rows(out / "data" / "1500K_narrow" / "train-00000-of-00001.parquet")
    assert [r["id"] for r in rows] == [r["id"] for r in small_build.configs["1500K_narrow"]["train"]]
    assert rows[0]["cluster_probs"] == small_build.configs["1500K_narrow"]["train"][0]["cluster_probs"]


def test_sro_figure(tmp_path, small_build):
    from dismai_data.builders import alloy

    path = alloy.sro_figure(small_build, tmp_path / "sro.png")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- from_files
def _write_original_like(folder, rows, name, shuffle_seed=None, noise=0.0):
    """Write rows as an extxyz file like the Zenodo originals (no dismai columns)."""
    from ase.io import write

    from dismai_data.structure import row_to_atoms

    frames = []
    rng = np.random.default_rng(shuffle_seed or 0)
    for r in rows:
        atoms = row_to_atoms(r)
        del atoms.arrays["dismai_frac_coords"]
        atoms.info.clear()
        if shuffle_seed is not None:
            atoms = atoms[rng.permutation(len(atoms))]
        if noise:
            atoms.positions += rng.normal(0, noise, atoms.positions.shape)
        frames.append(atoms)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write(str(path), frames, format="extxyz")
    return path


def test_from_files(tmp_path, small_build):
    from dismai_data.builders import alloy

    src = small_build.configs["300K_narrow"]
    folder = tmp_path / "dismai_bench" / "alloy_300K_narrow"
    _write_original_like(folder, src["train"], "train.extxyz", shuffle_seed=1, noise=0.02)
    _write_original_like(folder, src["validation"], "val.extxyz")
    _write_original_like(tmp_path / "dismai_bench" / "alloy_1500K_wide", small_build.configs["1500K_wide"]["train"][:3],
                         "train.extxyz")
    b = alloy.build(from_files=str(tmp_path / "dismai_bench"))
    assert not b.rebuilt and "original Zenodo" in b.summary
    assert set(b.configs) == {"300K_narrow", "1500K_wide"}
    assert {k: len(v) for k, v in b.configs["300K_narrow"].items()} == {"train": 8, "validation": 2}
    assert len(b.configs["1500K_wide"]["train"]) == 3
    for split in ("train", "validation"):
        for got, want in zip(b.configs["300K_narrow"][split], src[split]):
            assert got["temperature"] == 300.0 and got["run"] is None and got["pass"] is None
            assert got["ce_energy"] == pytest.approx(want["ce_energy"], abs=1e-14)
            assert np.allclose(got["cluster_probs"], want["cluster_probs"], atol=1e-14)
            for c in alloy.SRO_COLUMNS:
                assert got[c] == pytest.approx(want[c], abs=1e-12)
    # a list of files works the same (comma-separated, as from `--set from_files=a,b`)
    b2 = alloy.build(from_files=f"{folder / 'train.extxyz'},{folder / 'val.extxyz'}")
    assert [r["ce_energy"] for r in b2.configs["300K_narrow"]["train"]] == \
        [r["ce_energy"] for r in b.configs["300K_narrow"]["train"]]


def test_from_files_rejects_off_lattice_and_unnamed(tmp_path, small_build):
    from dismai_data.builders import alloy

    rows = small_build.configs["1500K_wide"]["train"][:1]
    bad = tmp_path / "alloy_1500K_wide"
    path = _write_original_like(bad, rows, "train.extxyz")
    from ase.io import read, write

    atoms = read(str(path))
    atoms.positions[0] += [1.0, 0.3, 0.0]
    write(str(path), atoms, format="extxyz")
    with pytest.raises(ValueError, match="not within"):
        alloy.build(from_files=str(bad))
    _write_original_like(tmp_path / "misc", rows, "structures.extxyz")
    with pytest.raises(ValueError, match="cannot tell the config"):
        alloy.build(from_files=str(tmp_path / "misc"))
