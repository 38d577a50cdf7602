"""The amorphous-Si builder (builders/a_si/): LAMMPS melt-quench, paper-style slicing,
relaxation, checkpoints/resume, quality analysis, from_files.

The default tests use a tiny deterministic build (one 320-atom cell, 1.5 ps melt,
5e14 K/s quench, 5 blocks). That tiny build meets every quality target of the issue
(density within 3 % of 2.28 g/cm^3 -- exact by construction --, >= 80 % four-fold,
mean bond angle within 2 deg of 109, no pair < 2.0 Å, fmax <= 0.05 eV/Å): measured
85 % four-fold and 108.5 deg. The slow test checks the same targets on a bigger build
with the default MD protocol.

Independent references: brute-force numpy distance matrices (not ASE neighbour lists)
for coordination, angles and distances; a fresh LAMMPS single point for energies and
forces; the crystalline diamond cell for the analysis functions.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dismai_data.builders.write import write_dataset
from dismai_data.builders import a_si
from dismai_data.io import write_extxyz
from dismai_data.physics import lammps
from dismai_data.raw import sha256_file
from dismai_data.structure import row_to_atoms

from builders_helpers import card_meta, check_layout_and_features

pytest.importorskip("lammps")

TINY = dict(n_blocks=5, n_cells=1, cell_atoms=320, melt_ps=1.5, quench_rate=500.0, anneal_ps=0.5, shard_size=2)
EXPECTED = {"train": 4, "validation": 1}
A_SI_FIGURES = ("figures/elements.png", "figures/num_atoms.png", "figures/property.png")
EXTRA = ("energy_per_atom", "source_cell", "block_index", "block_origin", "n_sliced", "n_added", "n_removed", "fmax",
         "fraction_4fold", "mean_coordination", "mean_bond_angle", "min_distance")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny build, shards relaxed in 2 worker processes (the resume test rebuilds in-process)."""
    work = tmp_path_factory.mktemp("a_si_work")
    b = a_si.build(**TINY, workers=2, workdir=str(work))
    out = write_dataset(b, tmp_path_factory.mktemp("a_si_out") / "a-si")
    return b, out, work


def _rows(b):
    return [r for s in ("train", "validation") for r in b.configs["default"][s]]


def _dist_matrix(row):
    """All minimum-image distances (cubic cell, brute force numpy)."""
    edge = row["lattice"][0][0]
    x = np.asarray(row["frac_coords"]) * edge
    d = x[:, None, :] - x[None, :, :]
    d -= edge * np.round(d / edge)
    return d, np.sqrt((d * d).sum(axis=2))


# --------------------------------------------------------------------------- analysis
def test_analysis_on_crystalline_diamond():
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(3)
    r, g = a_si.rdf([atoms])
    cut = a_si.first_minimum(r, g)
    assert 2.4 < cut < 3.4  # between the 2.35 Å and 3.84 Å shells
    ls = a_si.local_structure(atoms, cut)
    assert np.all(ls["cn"] == 4)
    assert len(ls["angles"]) == 6 * len(atoms)
    assert np.allclose(ls["angles"], math.degrees(math.acos(-1 / 3)), atol=1e-6)
    assert ls["min_distance"] == pytest.approx(5.431 * math.sqrt(3) / 4, abs=1e-9)
    # number of neighbours from the RDF integral up to the cutoff = 4
    n = len(atoms) / atoms.get_volume()
    dr = r[1] - r[0]
    assert np.sum(4 * np.pi * r[r < cut] ** 2 * g[r < cut] * n * dr) == pytest.approx(4.0, rel=1e-3)


def test_analysis_sees_a_fivefold_defect():
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    # an interstitial at the tetrahedral hole (0.5, 0.5, 0.5) of the conventional cell
    atoms.append("Si")
    atoms.positions[-1] = [5.431 / 2] * 3
    ls = a_si.local_structure(atoms, 2.6)
    assert ls["cn"][-1] == 4  # the interstitial sees the 4 atoms at a sqrt(3)/4
    assert np.sum(ls["cn"] == 5) == 4
    assert ls["min_distance"] == pytest.approx(5.431 * math.sqrt(3) / 4, abs=1e-9)


# --------------------------------------------------------------------------- potential and slicing
def test_vink_file_changes_only_epsilon_and_lambda(tmp_path):
    orig = a_si.shipped_potential("sw")
    vink = a_si.potential_file("sw-vink", tmp_path)

    def numbers(path):
        words = " ".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")).split()
        assert words[:3] == ["Si", "Si", "Si"] and len(words) == 14
        return [float(w) for w in words[3:]]

    a, b = numbers(orig), numbers(vink)
    assert a[0] == 2.1683 and a[3] == 21.0
    assert b[0] == 1.64833 and b[3] == 31.5
    assert [x for k, x in enumerate(a) if k not in (0, 3)] == [x for k, x in enumerate(b) if k not in (0, 3)]


def test_vink_potential_energy_of_diamond(tmp_path):
    """Diamond Si at the SW minimum (a = 5.431 Å): E = -2 epsilon per atom for both parameter sets
    (Vink only rescales epsilon and the three-body lambda, which vanishes at 109.47 deg); Tersoff's
    published cohesive energy is 4.63 eV/atom."""
    from ase.build import bulk

    x = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    for pot, eps in (("sw", 2.1683), ("sw-vink", 1.64833), ("tersoff", 4.63 / 2)):
        lmp = a_si.new_lammps()
        try:
            res = a_si.relax_block(lmp, x.positions, 2 * 5.431, {"potential": pot, "fmax": 0.05},
                                   str(a_si.potential_file(pot, tmp_path)))
        finally:
            lmp.close()
        assert res["energy_per_atom"] == pytest.approx(-2 * eps, abs=2e-3)
        assert res["fmax"] < (1e-6 if pot != "tersoff" else 0.05)


def test_slice_block_reaches_256_and_is_deterministic():
    rng = np.random.default_rng(5)
    edge = a_si.cell_edge(1200, 2.28)
    # a jittered simple-cubic "cell": 1200 = not a cube number, so use random positions with rejection
    pts = []
    while len(pts) < 1200:
        c = rng.uniform(0, edge, 3)
        if pts:
            d = np.asarray(pts) - c
            d -= edge * np.round(d / edge)
            if np.sqrt((d * d).sum(axis=1)).min() < 2.0:
                continue
        pts.append(c)
    cell = np.asarray(pts)
    p = {k: v[0] for k, v in a_si.PARAMETERS.items()}
    for block in range(6):
        s = a_si.slice_block(cell, edge, p, block)
        s2 = a_si.slice_block(cell, edge, p, block)
        assert np.array_equal(s["positions"], s2["positions"])
        x, bl = s["positions"], s["edge"]
        assert len(x) == 256
        assert bl == pytest.approx(edge * (256 / 1200) ** (1 / 3))
        assert np.all((x >= 0) & (x < bl))
        assert s["n_sliced"] + s["n_added"] - s["n_removed"] == 256
        d = x[:, None] - x[None]
        d -= bl * np.round(d / bl)
        r = np.sqrt((d * d).sum(axis=2)) + np.eye(256) * 99
        assert r.min() >= p["clash_distance"] - 1e-12
        # atoms not cut from the cell were added, and only in the boundary layers
        rel = np.mod(cell - s["origin"], edge)
        original = rel[np.all(rel < bl, axis=1)]
        new = [y for y in x if not np.any(np.all(np.isclose(original, y, atol=1e-12), axis=1))]
        assert len(new) == s["n_added"]
        for y in new:
            assert np.any((y < p["boundary_width"]) | (y >= bl - p["boundary_width"]))
            dy = x - y
            dy -= bl * np.round(dy / bl)
            assert np.sort(np.sqrt((dy * dy).sum(axis=1)))[1] >= p["add_min_distance"] - 1e-12


# --------------------------------------------------------------------------- tiny build
def test_tiny_build_layout_card_and_columns(tiny):
    b, out, work = tiny
    check_layout_and_features(b, out, EXPECTED, figures=A_SI_FIGURES)
    rows = _rows(b)
    assert sorted(r["block_index"] for r in rows) == list(range(5))
    assert len({r["id"] for r in rows}) == 5
    for r in rows:
        assert r["species"] == ["Si"] * 256 and r["num_atoms"] == 256
        assert all(k in r for k in EXTRA)
        assert r["source_cell"] == 0
        assert r["spacegroup_number"] is None
        assert r["n_sliced"] + r["n_added"] - r["n_removed"] == 256
    assert b.rebuilt and b.name == "a-si" and list(b.configs) == ["default"]
    first = b.summary.split(". ")[0]
    assert "rebuilt here with classical molecular dynamics" in first and "Stillinger-Weber" in first
    assert "256 atoms" in first and "5 amorphous-silicon blocks" in first
    assert b.parameters["seed"] == 2024 and b.parameters["lammps_seeds"]["cell_0"]
    assert "workdir" not in b.parameters and "workers" not in b.parameters
    shipped = a_si.shipped_potential("sw")
    assert b.sources[0].sha256 == sha256_file(shipped)
    assert b.sources[1].sha256 == sha256_file(work / "Si.vink.sw")
    assert "Stillinger" in b.citation and "Deringer" in b.citation and "Dismai-Bench" in b.citation
    text = (out / "README.md").read_text()
    for fig in ("rdf.png", "bond_angles.png", "coordination.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
        assert f"figures/{fig}" in text
    assert card_meta(out)["pretty_name"]


def test_tiny_build_quality_targets(tiny):
    """The issue's targets, recomputed by brute force on the rows (the tiny build meets all)."""
    b, _, _ = tiny
    rows = _rows(b)
    cut = b.analysis["cutoff"]
    assert 2.6 < cut < 3.2
    cn_all, angles = [], []
    for r in rows:
        assert abs(r["density"] - 2.28) / 2.28 <= 0.03
        d, dist = _dist_matrix(r)
        np.fill_diagonal(dist, np.inf)
        assert dist.min() >= 2.0
        assert r["min_distance"] == pytest.approx(dist.min(), abs=1e-9)
        nb = dist < cut
        cn = nb.sum(axis=1)
        assert r["fraction_4fold"] == pytest.approx(np.mean(cn == 4))
        row_angles = []
        for i in range(len(cn)):
            v = d[i][nb[i]]
            v = v / np.linalg.norm(v, axis=1)[:, None]
            for a in range(len(v)):
                for c in range(a + 1, len(v)):
                    row_angles.append(math.degrees(math.acos(max(-1.0, min(1.0, float(v[a] @ v[c]))))))
        assert r["mean_bond_angle"] == pytest.approx(np.mean(row_angles), abs=1e-9)
        cn_all.append(cn)
        angles += row_angles
    cn_all = np.concatenate(cn_all)
    assert np.mean(cn_all == 4) >= 0.80
    assert abs(np.mean(angles) - 109.0) <= 2.0
    assert all(ok for _, ok in a_si.quality_checks(b.analysis))


def test_tiny_build_energies_and_forces_recomputed(tiny, tmp_path):
    """A fresh LAMMPS single point on the stored rows reproduces energy_per_atom and fmax <= 0.05."""
    b, _, work = tiny
    pot = work / "Si.vink.sw"
    for r in _rows(b)[:2]:
        atoms = row_to_atoms(r)
        lmp = a_si.new_lammps()
        try:
            edge = r["lattice"][0][0]
            lmp.commands_string("units metal\natom_style atomic\nboundary p p p\natom_modify map array\n"
                                f"region box block 0 {edge!r} 0 {edge!r} 0 {edge!r} units box\ncreate_box 1 box\n")
            lmp.create_atoms(256, list(range(1, 257)), [1] * 256, atoms.positions.reshape(-1).tolist())
            lmp.commands_string(lammps.pair_commands("sw-vink", pot) + "run 0\n")
            e = lmp.get_thermo("pe") / 256
            f = lammps.max_force(lmp)
        finally:
            lmp.close()
        assert e == pytest.approx(r["energy_per_atom"], abs=1e-8)
        assert f <= 0.05 + 1e-6
        assert -2 * 1.64833 < e < -2.7  # above Vink-SW diamond (-3.297 eV/atom), as a-Si must be


def test_resume_after_interruption_gives_the_same_data(tiny, tmp_path):
    """Interrupted after the melt-quench checkpoint, then after one block shard; the rerun
    (in-process, where the fixture used 2 worker processes) continues and equals the
    uninterrupted build bit for bit."""
    b, _, _ = tiny
    work = tmp_path / "work"
    with pytest.raises(a_si.Interrupted):
        a_si.build(**TINY, workers=1, workdir=str(work), stop_after="cells")
    assert (work / "cell_000.npz").is_file() and not list(work.glob("blocks_*"))
    cell_bytes = (work / "cell_000.npz").read_bytes()
    cell_mtime = (work / "cell_000.npz").stat().st_mtime_ns
    with pytest.raises(a_si.Interrupted):
        a_si.build(**TINY, workers=1, workdir=str(work), stop_after=1)
    assert [f.name for f in sorted(work.glob("blocks_*.npz"))] == ["blocks_00000.npz"]
    shard_mtime = (work / "blocks_00000.npz").stat().st_mtime_ns
    again = a_si.build(**TINY, workers=1, workdir=str(work))
    assert (work / "cell_000.npz").stat().st_mtime_ns == cell_mtime  # not recomputed
    assert (work / "blocks_00000.npz").stat().st_mtime_ns == shard_mtime
    assert (work / "cell_000.npz").read_bytes() == cell_bytes
    for split in EXPECTED:
        assert again.configs["default"][split] == b.configs["default"][split]
    # a different parameter set refuses the folder instead of mixing checkpoints
    with pytest.raises(ValueError, match="different build"):
        a_si.build(**{**TINY, "seed": 7}, workers=1, workdir=str(work))


# --------------------------------------------------------------------------- mid-run checkpoints of the cells
def _ckpt_files(work):
    return sorted(f.name for f in work.glob("cell_*.ckpt*"))


def test_md_segments_cover_each_stage_once():
    p = a_si.parse_params(TINY)
    stages = a_si.md_stages(p)
    assert [s[1:3] for s in stages] == [(0, 1500), (1500, 7900), (7900, 8400)]
    seg = a_si.md_segments(p)
    assert seg[0] == (0, 0, 1000) and seg[1] == (0, 1000, 1500) and seg[2] == (1, 1500, 2500)
    assert all(b - a <= a_si.MD_SEGMENT_STEPS for _, a, b in seg)
    assert [a for _, a, _ in seg[1:]] == [b for _, _, b in seg[:-1]]  # contiguous, no step twice
    # checkpoint_ps and the other runtime settings are not part of the data (hash, card)
    assert "checkpoint_ps" not in a_si.data_params(p)
    assert a_si.default_workdir(p) == a_si.default_workdir({**p, "checkpoint_ps": 0.5, "workers": 1})


def test_melt_msd_equals_lammps_compute_msd(tmp_path):
    """The builder's MSD (unwrapped positions from coordinates + decoded image flags) equals
    LAMMPS's own compute msd on a hot liquid whose atoms cross the periodic faces."""
    pot = a_si.potential_file("sw-vink", tmp_path)
    L = a_si.cell_edge(200, 2.28)
    lmp = a_si.new_lammps()
    try:
        lmp.commands_string("units metal\natom_style atomic\nboundary p p p\natom_modify map array\n"
                            f"region box block 0 {L!r} 0 {L!r} 0 {L!r} units box\ncreate_box 1 box\n"
                            "create_atoms 1 random 200 4321 NULL overlap 2.0 maxtry 1000 units box\n"
                            + a_si.md_setup_commands({"potential": "sw-vink", "timestep_fs": 1.0}, str(pot))
                            + "velocity all create 5000.0 99 mom yes rot yes\nfix md all nvt temp 5000.0 5000.0 0.1\n"
                              "run 0\n")
        x0 = a_si.unwrapped_by_id(lmp, L)
        lmp.commands_string("compute msd all msd\nrun 600\n")
        ref = float(lmp.extract_compute("msd", 0, 1)[3])
        x1 = a_si.unwrapped_by_id(lmp, L)
        n = lmp.get_natoms()
        wrapped = np.array(lmp.numpy.extract_atom("x")[:n])
        assert np.any(np.abs(x1 - lammps.positions_by_id(lmp)) > L / 2)  # some atoms crossed a face
        assert np.all((wrapped > -1.0) & (wrapped < L + 1.0))
    finally:
        lmp.close()
    assert ref > 1.0
    assert a_si.mean_squared_displacement(x0, x1) == pytest.approx(ref, rel=1e-12)


def test_cell_interrupted_by_stop_hook_resumes_to_the_same_data(tiny, tmp_path):
    """The build stops (stop_after='checkpoints:3') in the middle of the cell's MD, leaving
    a mid-run checkpoint; the rerun continues from it and the build equals the uninterrupted
    fixture (other checkpoint_ps, 2 worker processes) bit for bit; the checkpoint files are
    removed once the cell is done, and the card and build_info say the cell was resumed."""
    b, _, fixture_work = tiny
    work = tmp_path / "work"
    with pytest.raises(a_si.Interrupted, match="3 checkpoints"):
        a_si.build(**TINY, checkpoint_ps=1.0, workers=1, workdir=str(work), stop_after="checkpoints:3")
    assert not (work / "cell_000.npz").exists()
    # checkpoints at segment ends >= 1000 steps apart: 1000, 2500, 3500
    assert _ckpt_files(work) == ["cell_000.ckpt.3500.restart", "cell_000.ckpt.json", "cell_000.ckpt.x0.npy"]
    state = json.loads((work / "cell_000.ckpt.json").read_text())
    assert state["step"] == 3500 and state["resumed"] == 0 and "melt_msd" in state  # melt (1500 steps) done
    again = a_si.build(**TINY, checkpoint_ps=1.0, workers=1, workdir=str(work))
    assert _ckpt_files(work) == []
    with np.load(work / "cell_000.npz") as z, np.load(fixture_work / "cell_000.npz") as ref:
        assert int(z["resumed"]) == 1 and int(z["resumed_at_step"]) == 3500 and int(ref["resumed"]) == 0
        # physically equivalent (tolerance 1e-6 eV/atom, 1e-6 Å^2) ...
        assert float(z["energy_per_atom"]) == pytest.approx(float(ref["energy_per_atom"]), abs=1e-6)
        assert float(z["melt_msd"]) == pytest.approx(float(ref["melt_msd"]), abs=1e-6)
        # ... and in fact bit-identical (same LAMMPS binary, same 1000-step segments)
        for k in ("positions", "energy_per_atom", "melt_msd", "melt_energy_per_atom", "fmax", "md_steps"):
            assert np.array_equal(z[k], ref[k]), k
    rows, ref_rows = _rows(again), _rows(b)
    assert np.mean([r["energy_per_atom"] for r in rows]) == pytest.approx(
        np.mean([r["energy_per_atom"] for r in ref_rows]), abs=1e-6)
    assert [r["density"] for r in rows] == pytest.approx([r["density"] for r in ref_rows], rel=1e-12)
    for split in EXPECTED:
        assert again.configs["default"][split] == b.configs["default"][split]
    assert again.parameters["cells_resumed"] == {"cell_0": 1} and b.parameters["cells_resumed"] == {"cell_0": 0}
    assert "resumed 1x from a mid-run checkpoint" in again.provenance
    assert "no cell was resumed" in b.provenance
    assert {k: v for k, v in again.parameters.items() if not k.startswith("cells_")} == {
        k: v for k, v in b.parameters.items() if not k.startswith("cells_")}


_KILL_SCRIPT = """
import sys
from dismai_data.builders import a_si
p = a_si.parse_params(dict({tiny}, checkpoint_ps=0.5))
a_si.melt_quench(p, 0, sys.argv[1], sys.argv[2])
"""


def test_cell_killed_then_corrupt_checkpoint_restarts_from_scratch(tiny, tmp_path, caplog):
    """kill -9 of a process in the middle of the MD leaves a usable checkpoint (resumed here);
    a truncated restart file is then detected -- by its sha256, and, with a forged sha256, by
    LAMMPS failing to read it -- logged, deleted, and the cell restarts from the beginning and
    still equals the uninterrupted fixture's cell bit for bit."""
    import logging
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    _, _, fixture_work = tiny
    work = tmp_path / "work"
    work.mkdir()
    pot = str(a_si.potential_file("sw-vink", work))
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT.format(tiny=repr(TINY)), pot, str(work)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            state = work / "cell_000.ckpt.json"
            if state.is_file() and json.loads(state.read_text())["step"] >= 2000:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the MD finished or failed before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_step = json.loads((work / "cell_000.ckpt.json").read_text())["step"]
    p = a_si.parse_params({**TINY, "checkpoint_ps": 0.5})
    ends = [b for _, _, b in a_si.md_segments(p)]
    assert killed_step in ends and 2000 <= killed_step < ends[-2]  # mid-quench; not the last checkpoint
    next_step = ends[ends.index(killed_step) + 1]
    # resume from what the killed process left, then stop after one more checkpoint
    with pytest.raises(a_si.Interrupted):
        a_si.melt_quench(p, 0, pot, work, stop_after_checkpoints=1)
    state = json.loads((work / "cell_000.ckpt.json").read_text())
    assert state["resumed"] == 1 and state["step"] == next_step
    saved = tmp_path / "saved"
    shutil.copytree(work, saved)
    restart = work / state["restart"]

    # 1. truncated restart file: the sha256 check refuses it, nothing is used, files deleted
    restart.write_bytes(restart.read_bytes()[: restart.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger=a_si.__name__):
        assert a_si.CellCheckpoint(work, 0).load(p) is None
    assert "does not match its sha256" in caplog.text and "from the beginning" in caplog.text
    assert _ckpt_files(work) == []

    # 2. truncated restart file with a matching sha256 in the state: LAMMPS's read_restart fails
    shutil.rmtree(work)
    shutil.copytree(saved, work)
    restart.write_bytes(restart.read_bytes()[: restart.stat().st_size // 2])
    state["restart_sha256"] = sha256_file(restart)
    (work / "cell_000.ckpt.json").write_text(json.dumps(state))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=a_si.__name__):
        a_si.cell_task(p, 0, pot, str(work))
    assert "unusable" in caplog.text and "restart file" in caplog.text and "from the beginning" in caplog.text
    assert _ckpt_files(work) == []
    with np.load(work / "cell_000.npz") as z, np.load(fixture_work / "cell_000.npz") as ref:
        assert int(z["discarded_checkpoints"]) == 1 and int(z["resumed"]) == 0 and int(z["resumed_at_step"]) == 0
        for k in ("positions", "energy_per_atom", "melt_msd", "fmax"):
            assert np.array_equal(z[k], ref[k]), k

    # 3. the undamaged copy resumes and gives the same cell too
    res = a_si.melt_quench(p, 0, pot, saved)
    assert int(res["resumed"]) == 2 and int(res["resumed_at_step"]) == next_step
    with np.load(fixture_work / "cell_000.npz") as ref:
        assert np.array_equal(res["positions"], ref["positions"])


# --------------------------------------------------------------------------- from_files
def test_from_files(tiny, tmp_path):
    b, _, _ = tiny
    folder = tmp_path / "zenodo" / "a-Si"
    folder.mkdir(parents=True)
    train, val = b.configs["default"]["train"], b.configs["default"]["validation"]
    write_extxyz(train, folder / "a-Si_train.extxyz")
    write_extxyz(val, folder / "a-Si_val.extxyz")
    fb = a_si.build(from_files=str(folder.parent))
    assert {s: len(r) for s, r in fb.configs["default"].items()} == EXPECTED
    assert not fb.rebuilt and "original Zenodo extxyz" in fb.summary
    for orig, got in zip(train + val, fb.configs["default"]["train"] + fb.configs["default"]["validation"]):
        assert got["num_atoms"] == 256 and got["energy_per_atom"] is None and got["source_cell"] is None
        assert np.allclose(np.mod(np.asarray(got["frac_coords"]) - np.asarray(orig["frac_coords"]) + 0.5, 1) - 0.5,
                           0, atol=1e-7)
        assert got["fraction_4fold"] == pytest.approx(orig["fraction_4fold"])
        assert got["min_distance"] == pytest.approx(orig["min_distance"], abs=1e-6)
        assert got["mean_bond_angle"] == pytest.approx(orig["mean_bond_angle"], abs=1e-4)
    out = write_dataset(fb, tmp_path / "out")
    check_layout_and_features(fb, out, EXPECTED, figures=A_SI_FIGURES)
    # a list of files works too; a file whose name names no split and a non-Si file are refused
    fb2 = a_si.build(from_files=f"{folder / 'a-Si_train.extxyz'},{folder / 'a-Si_val.extxyz'}")
    assert fb2.configs["default"]["train"] == fb.configs["default"]["train"]
    write_extxyz(val, tmp_path / "blocks.extxyz")
    with pytest.raises(ValueError, match="split"):
        a_si.build(from_files=str(tmp_path / "blocks.extxyz"))
    bad = dict(val[0], species=["Ge"] + ["Si"] * 255, atomic_numbers=[32] + [14] * 255)
    write_extxyz([bad], tmp_path / "bad_train.extxyz")
    with pytest.raises(ValueError, match="pure Si"):
        a_si.build(from_files=str(tmp_path / "bad_train.extxyz"))
    with pytest.raises(FileNotFoundError):
        a_si.build(from_files=str(tmp_path / "missing"))


def test_changed_potential_file_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "share" / "lammps" / "potentials"
    fake.mkdir(parents=True)
    (fake / "Si.sw").write_text(a_si.shipped_potential("sw").read_text().replace("21.0", "21.5"))
    monkeypatch.setattr(lammps, "_lammps_dir", lambda: tmp_path)  # where shipped_potential looks
    with pytest.raises(ValueError, match="sha256"):
        a_si.shipped_potential("sw-vink")


def test_parameter_errors():
    with pytest.raises(TypeError, match="unknown"):
        a_si.build(nblocks=3)
    with pytest.raises(ValueError, match="cell_atoms"):
        a_si.build(cell_atoms=200)
    with pytest.raises(ValueError, match="potential"):
        a_si.build(potential="gap")


# --------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_bigger_build_meets_quality_targets(tmp_path):
    """Default MD protocol (10 ps melt at 3500 K, 1e14 K/s quench, 5 ps anneal) on two
    1500-atom cells, 40 blocks; strict_quality makes the build itself fail on a miss."""
    b = a_si.build(n_blocks=40, n_cells=2, cell_atoms=1500, workers=2, workdir=str(tmp_path / "work"))
    an = b.analysis
    assert an["fraction_4fold"] >= 0.80
    assert abs(an["mean_bond_angle"] - 109.0) <= 2.0
    assert an["min_distance"] >= 2.0
    assert abs(an["density_mean"] - 2.28) / 2.28 <= 0.03
    assert {s: len(r) for s, r in b.configs["default"].items()} == {"train": 32, "validation": 8}
    assert {r["source_cell"] for r in _rows(b)} == {0, 1}
