"""The relaxation step of the a-Si and interface tasks (benchmark-definitions 3.1 step 2,
3.2 step 1): LAMMPS positions-only relaxation with the a-Si dataset's potentials
(same file, numbers and minimiser as the builder), M3GNet through the shared engine,
rejection of structures that fail to relax, and the done-when pairs with relaxation on
(own-like sets score small distances, crystalline / randomised ones large)."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from pymatgen.core import Lattice, Structure

os.environ.setdefault("DISMAI_NO_PROGRESS", "1")

from dismai_data.physics import lammps  # noqa: E402
from dismai_data.evaluation import evaluate  # noqa: E402
from dismai_data.structure import make_row, row_from_structure, rows_to_table  # noqa: E402

DIAMOND = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.25],
           [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]]
A_SI = 5.431


def _diamond(reps=(1, 1, 1)):
    s = Structure(Lattice.cubic(A_SI), ["Si"] * 8, DIAMOND)
    s.make_supercell(list(reps))
    return s


def _shaken(s, noise, seed):
    rng = np.random.default_rng(seed)
    return Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, noise, (len(s), 3)),
                     coords_are_cartesian=True)


def test_vink_file_and_checks_are_the_builders():
    from dismai_data.builders import a_si

    src = lammps.shipped_potential("sw-vink").read_text()
    # one copy: the builder uses dismai_data.physics.lammps's potential files and minimiser
    assert a_si.potential_file is lammps.potential_file and a_si.minimize is lammps.minimize
    assert lammps.SI_MASS == a_si.SI_MASS
    text = lammps.vink_sw_text(src)
    nums = [float(x) for x in [ln for ln in text.splitlines() if ln.startswith("Si")][0].split()[3:]]
    assert nums[0] == 1.64833 and nums[3] == 31.5 and nums[1] == 2.0951  # epsilon, lambda (Vink); sigma kept
    with pytest.raises(ValueError, match="Stillinger-Weber 1985"):
        lammps.vink_sw_text(lammps.vink_sw_text(src))  # already transformed: refused
    with pytest.raises(ValueError, match="unknown potential"):
        lammps.relax_structures([_diamond()], "gap18")


def test_diamond_energies_any_cell_shape():
    sw, vink, tersoff = (lammps.relax_structures([_diamond()], p)[0] for p in ("sw", "sw-vink", "tersoff"))
    for r in (sw, vink, tersoff):
        assert r.converged and r.error is None and r.fmax < 1e-8
    assert sw.energy / 8 == pytest.approx(-4.3366, abs=1e-4)  # Stillinger-Weber 1985 diamond
    assert tersoff.energy / 8 == pytest.approx(-4.6304, abs=1e-4)
    assert vink.energy / sw.energy == pytest.approx(1.64833 / 2.1683, rel=1e-9)  # only epsilon scales E0
    # the same shaken crystal in its cubic cell and in a skewed basis of the same lattice
    s = _shaken(_diamond((2, 1, 1)), 0.15, 0)
    skew = Lattice(np.array([[1, 0, 0], [1, 1, 0], [-1, 2, 1]]) @ s.lattice.matrix)
    t = Structure(skew, s.species, s.cart_coords, coords_are_cartesian=True, to_unit_cell=True)
    a, b = lammps.relax_structures([s, t], "sw-vink")
    assert a.converged and b.converged and a.fmax <= 0.05 and b.fmax <= 0.05
    assert a.energy == pytest.approx(b.energy, abs=1e-6)
    assert a.structure.lattice == s.lattice and b.structure.lattice == skew  # lattice fixed
    lat = a.structure.lattice
    d = lat.get_all_distances(a.structure.frac_coords, lat.get_fractional_coords(b.structure.cart_coords))
    assert np.diag(d).max() < 1e-4  # same atoms, same final positions
    assert a.energy / 16 < -3.29 and a.steps > 0  # back near the diamond minimum


def test_same_relaxation_as_the_builders_block_step(tmp_path):
    from dismai_data.builders import a_si

    s = _shaken(_diamond((2, 2, 2)), 0.3, 1)
    edge = float(s.lattice.a)
    lmp = a_si.new_lammps()
    try:
        pot = a_si.potential_file("sw-vink", tmp_path)
        ref = a_si.relax_block(lmp, s.cart_coords % edge, edge, {"potential": "sw-vink", "fmax": 0.05}, str(pot))
    finally:
        lmp.close()
    got = lammps.relax_structures([s], "sw-vink")[0]
    assert got.converged and got.fmax == pytest.approx(ref["fmax"], abs=1e-9)
    assert got.energy / len(s) == pytest.approx(ref["energy_per_atom"], abs=1e-9)
    assert got.steps == ref["min_iterations"]
    assert np.abs(got.structure.cart_coords - ref["positions"]).max() < 1e-8


def test_lammps_failure_is_one_row():
    ge = Structure(Lattice.cubic(A_SI), ["Ge"] + ["Si"] * 7, DIAMOND)
    out = lammps.relax_structures([ge, _diamond()], "sw")
    assert out[0].structure is None and "pure Si" in out[0].error and not out[0].converged
    assert out[1].converged


# --------------------------------------------------------------------------- tasks
def _ref_folder(root, rows, parameters=None):
    (root / "data").mkdir(parents=True)
    pq.write_table(rows_to_table(rows), root / "data" / "train-00000-of-00001.parquet")
    (root / "build_info.json").write_text(json.dumps({"name": root.name, "version": "0.0.1",
                                                      "parameters": parameters or {}}))
    return root


def _write(path, rows):
    pq.write_table(rows_to_table(rows), path)
    return str(path)


def _amorphous_like(seed):
    """16 Si: a strongly shaken diamond cell relaxed with sw-vink (the dataset's potential)."""
    return lammps.relax_structures([_shaken(_diamond((2, 1, 1)), 0.6, seed)], "sw-vink")[0].structure


def test_asi_relaxes_by_default_and_done_when_pair(tmp_path, monkeypatch):
    train = [row_from_structure(_amorphous_like(s), f"t{s}") for s in range(3)]
    ref = _ref_folder(tmp_path / "a-si", train, {"potential": "sw-vink", "from_files": None})
    own = evaluate("a-si", _write(tmp_path / "own.parquet",
                                  [row_from_structure(_amorphous_like(s), f"g{s}") for s in range(3)]),
                   reference=str(ref), figures=False)
    assert own.relaxed and "LAMMPS sw-vink" in own.relaxation_note
    rel = own.settings["relaxation"]
    assert rel["engine"] == "LAMMPS" and rel["potential"] == "sw-vink" and "build_info" in rel["why"]
    assert own.counts.failed == 0
    cryst = evaluate("a-si", _write(tmp_path / "c.parquet", [row_from_structure(_diamond((2, 1, 1)), "c")]),
                     reference=str(ref), figures=False)
    rng = np.random.default_rng(5)
    rand = evaluate("a-si", _write(tmp_path / "r.parquet",
                                   [make_row(["Si"] * 16, rng.random((16, 3)), train[0]["lattice"], f"r{i}",
                                             symmetry=False) for i in range(3)]), reference=str(ref), figures=False)
    for k in ("d_motif", "d_rdf", "d_angle"):
        assert cryst.metrics[k].value > 3 * own.metrics[k].value, k
        assert rand.metrics[k].value > 1.5 * own.metrics[k].value, k
    # the potential comes from build_info; without one, sw-vink with the reason recorded
    ref2 = _ref_folder(tmp_path / "a-si-files", train, {"from_files": ["x.extxyz"], "potential": "sw"})
    r = evaluate("a-si", str(tmp_path / "c.parquet"), reference=str(ref2), figures=False)
    assert r.settings["relaxation"]["potential"] == "sw-vink" and "from files" in r.settings["relaxation"]["why"]
    r = evaluate("a-si", str(tmp_path / "c.parquet"), reference=str(ref2), figures=False, lammps_potential="tersoff")
    assert r.settings["relaxation"]["potential"] == "tersoff"

    # a structure that fails to relax is rejected with the reason in the per-row table
    real = lammps.relax_structures

    def flaky(structures, potential="sw-vink", **kw):
        out = real(structures, potential, **kw)
        out[0] = lammps.LammpsRelaxResult(out[0].structure, out[0].energy, 0.9, 7, False, None)
        return out

    monkeypatch.setattr(lammps, "relax_structures", flaky)
    bad = evaluate("a-si", str(tmp_path / "own.parquet"), reference=str(ref), out=str(tmp_path / "o"),
                   figures=False)
    assert bad.counts.failed == 1 and bad.counts.failure_reasons == {"relaxation": 1}
    import pandas as pd

    t = pd.read_csv(tmp_path / "o" / "rows.csv").set_index("id")
    assert t.loc["g0", "status"] == "failed" and "did not reach fmax 0.05" in t.loc["g0", "reason"]
    assert t.loc["g0", "relax_steps"] == 7 and t.loc["g1", "status"] == "accepted"
    assert t.loc["g1", "relax_fmax"] <= 0.05


def _interface_like(seed, noise=0.05):
    """16-atom rock-salt cell: cations Li4 Co2 Sc2 on one sublattice, O6 Cl2 on the other."""
    base = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.2), ["Li", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    base.make_supercell([1, 1, 2])
    rng = np.random.default_rng(seed)
    cations = ["Li"] * 4 + ["Co"] * 2 + ["Sc"] * 2
    anions = ["O"] * 6 + ["Cl"] * 2
    species = [cations.pop() if site.specie.symbol == "Li" else anions.pop() for site in base]
    return Structure(base.lattice, species, base.cart_coords + rng.normal(0, noise, (len(base), 3)),
                     coords_are_cartesian=True)


@pytest.mark.slow  # M3GNet relaxations on CPU: minutes on a shared 2-core machine
def test_interface_relaxes_with_the_m3gnet_relaxer_and_done_when_pair(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from dismai_data.physics.relax import load_potential, relax_many

    pot = load_potential()
    relaxed = [r.structure for r in relax_many([_interface_like(s) for s in range(3)], potential=pot, fmax=0.05,
                                               progress=False)]
    train = [row_from_structure(s, f"t{i}") for i, s in enumerate(relaxed[:2])]
    ref = _ref_folder(tmp_path / "interface", train)
    own = evaluate("interface", _write(tmp_path / "own.parquet", [row_from_structure(relaxed[2], "g")]),
                   reference=str(ref), figures=False, out=str(tmp_path / "o"))
    assert own.relaxed and own.counts.failed == 0
    rel = own.settings["relaxation"]
    assert rel["source"].startswith("local:") and rel["fallback_reason"] == "HF_HUB_OFFLINE is set"
    assert rel["fmax_eV_per_A"] == 0.05
    import pandas as pd

    t = pd.read_csv(tmp_path / "o" / "rows.csv")
    assert t.loc[0, "relax_fmax"] < 0.05 and t.loc[0, "relax_steps"] >= 0
    # randomised: the same positions with the species shuffled over all sites (cations on anion
    # sites). Relaxed, this one does not reach fmax in 1000 FIRE steps (a rejected row, seen
    # on CPU); it is scored unrelaxed against the own set scored the same way.
    s = relaxed[2]
    species = [sp.symbol for sp in s.species]
    np.random.default_rng(3).shuffle(species)
    rand = evaluate("interface", _write(tmp_path / "rand.parquet", [make_row(
        species, s.frac_coords, s.lattice.matrix, "r", symmetry=False)]), reference=str(ref), figures=False,
        no_relax=True)
    own = evaluate("interface", str(tmp_path / "own.parquet"), reference=str(ref), figures=False, no_relax=True)
    assert rand.counts.accepted == 1 and own.counts.accepted == 1
    for k in ("d_Li", "d_Co", "d_Sc", "d_all"):
        assert rand.metrics[k].value > 2 * own.metrics[k].value, k


def test_interface_relaxations_checkpointed_and_resumed(tmp_path, monkeypatch):
    """``relax_checkpoint`` keeps each M3GNet relaxation shard; a rerun on the same folder scores
    the same numbers without relaxing anything, and two local workers (a Dask cluster) give the
    same relaxations as one process. LAMMPS relaxations are not checkpointed: refused by name."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from dismai_data.evaluation.sources import EvaluationInputError
    from dismai_data.physics.relax import many

    ref = _ref_folder(tmp_path / "interface", [row_from_structure(_interface_like(s), f"t{s}") for s in (0, 1)])
    preds = _write(tmp_path / "g.parquet", [row_from_structure(_interface_like(s, 0.15), f"g{s}") for s in (5, 6)])
    ck = tmp_path / "ck"
    first = evaluate("interface", preds, reference=str(ref), figures=False, generic=False, relax_checkpoint=ck,
                     out=str(tmp_path / "a"))
    assert first.relaxed and first.counts.accepted == 2 and {p.suffix for p in ck.iterdir()} == {".parquet"}

    def no_relaxing(*a, **k):
        raise AssertionError("relaxed again although every structure is in the checkpoint")

    monkeypatch.setattr(many, "_relax_in_process", no_relaxing)
    again = evaluate("interface", preds, reference=str(ref), figures=False, generic=False, relax_checkpoint=ck,
                     out=str(tmp_path / "b"))
    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert {k: m.value for k, m in again.metrics.items()} == {k: m.value for k, m in first.metrics.items()}
    import pandas as pd

    cols = ["id", "relax_steps", "relax_fmax", "relax_energy_eV"]
    a, b = (pd.read_csv(tmp_path / d / "rows.csv")[cols] for d in "ab")
    pd.testing.assert_frame_equal(a, b)
    evaluate("interface", preds, reference=str(ref), figures=False, generic=False, workers=2,
             relax_checkpoint=tmp_path / "ck2", out=str(tmp_path / "c"))
    c = pd.read_csv(tmp_path / "c" / "rows.csv")[cols]
    assert (c["relax_steps"] == a["relax_steps"]).all()
    assert np.allclose(c["relax_energy_eV"], a["relax_energy_eV"], atol=1e-4)
    asi = _ref_folder(tmp_path / "a-si", [row_from_structure(_diamond(), "t0")], {"potential": "sw-vink"})
    with pytest.raises(EvaluationInputError, match="relax_checkpoint|--relax-checkpoint"):
        evaluate("a-si", _write(tmp_path / "s.parquet", [row_from_structure(_diamond(), "g0")]),
                 reference=str(asi), figures=False, relax_checkpoint=tmp_path / "ck3")


def test_relaxation_note_names_the_packaged_weights_not_this_machines_path():
    """The note goes into published cards: the packaged relaxer weights are named, not located
    by this checkout's absolute path; a folder the user gives is recorded as given."""
    from dismai_data.evaluation.api import _spec_text
    from dismai_data.physics.relax import WEIGHTS_NAME, local_weights_dir

    note = _spec_text({"engine": "m3gnet", "source": str(local_weights_dir())})
    assert WEIGHTS_NAME in note and "/" not in note, note
    assert "/data/my-weights" in _spec_text({"engine": "m3gnet", "source": "/data/my-weights"})


def test_interface_relaxed_with_dismai_bench_cg(tmp_path, monkeypatch):
    """The interface relaxes with Dismai-Bench's fmin_cg by default (the registry's optimizer_id)
    and says so in the note and the settings; ``relax_optimizer="fire"`` relaxes with FIRE, and
    its checkpoint folder is refused, not reused, by a CG run; the option is refused by name where
    no M3GNet relaxation runs; a structure CG leaves at fmax <= 0.051 eV/A is accepted, as
    relax_int.py accepts it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from dismai_data.evaluation.disorder_prepare import accept_within
    from dismai_data.evaluation.sources import EvaluationInputError
    from dismai_data.physics.relax import RelaxResult

    ref = _ref_folder(tmp_path / "interface", [row_from_structure(_interface_like(s), f"t{s}") for s in (0, 1)])
    preds = _write(tmp_path / "g.parquet", [row_from_structure(_interface_like(s, 0.15), f"g{s}") for s in (5, 6)])
    fire_ck = tmp_path / "ck-fire"
    fire = evaluate("interface", preds, reference=str(ref), figures=False, generic=False, relax_checkpoint=fire_ck,
                    relax_optimizer="fire")
    assert "FIRE" in fire.relaxation_note and fire.settings["relaxation"]["optimizer"] == "FIRE"
    with pytest.raises(EvaluationInputError, match="other parameters .*'optimizer' is 'FIRE' there, 'CG' here"):
        evaluate("interface", preds, reference=str(ref), figures=False, generic=False, relax_checkpoint=fire_ck)
    cg = evaluate("interface", preds, reference=str(ref), figures=False, generic=False,
                  relax_checkpoint=tmp_path / "ck-cg", out=str(tmp_path / "cg"))
    assert cg.counts.accepted == 2 and "conjugate gradient" in cg.relaxation_note
    assert cg.settings["relaxation"]["optimizer"].startswith("CG")
    import pandas as pd

    rows = pd.read_csv(tmp_path / "cg" / "rows.csv")
    assert (rows["relax_fmax"] <= 0.05).all() and (rows["relax_steps"] > 0).all()
    with pytest.raises(EvaluationInputError, match="unknown relaxation optimizer 'BFGS'"):
        evaluate("interface", preds, reference=str(ref), figures=False, relax_optimizer="BFGS")
    with pytest.raises(EvaluationInputError, match="relax_optimizer applies to M3GNet relaxations.*does not relax"):
        evaluate("interface", preds, reference=str(ref), figures=False, no_relax=True, relax_optimizer="cg")
    asi = _ref_folder(tmp_path / "a-si", [row_from_structure(_diamond(), "t0")], {"potential": "sw-vink"})
    with pytest.raises(EvaluationInputError, match="relaxes with LAMMPS"):
        evaluate("a-si", _write(tmp_path / "s.parquet", [row_from_structure(_diamond(), "g0")]),
                 reference=str(asi), figures=False, relax_optimizer="cg")
    s = _diamond()
    near = RelaxResult(s, -1.0, 0.0505, 1000, False, "not converged in 1000 steps (fmax 0.0505 eV/Å)")
    assert accept_within(near, 0.051).converged and accept_within(near, 0.051).error is None
    far = RelaxResult(s, -1.0, 0.0515, 1000, False, "not converged")
    assert accept_within(far, 0.051) is far
