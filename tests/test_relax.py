"""The shared relaxation engine (dismai_data.physics.relax): the batched FIRE engine against
one-at-a-time ASE FIRE with matgl's calculator, checkpoint/resume, Dask, bad input,
and where the potential comes from."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
from pymatgen.core import Lattice, Structure  # noqa: E402

from dismai_data.physics import relax as R  # noqa: E402
from dismai_data.physics.relax import batch, cluster, fire  # noqa: E402
from dismai_data.physics.relax import forces as F  # noqa: E402
from dismai_data.physics.relax import potential as P  # noqa: E402


def _rattle(s: Structure, sd: float, seed: int) -> Structure:
    rng = np.random.default_rng(seed)
    return Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, sd, (len(s), 3)),
                     coords_are_cartesian=True)


def si8() -> Structure:
    s = Structure(Lattice.cubic(5.43), ["Si"] * 8,
                  [[0, 0, 0], [.25, .25, .25], [.5, .5, 0], [.75, .75, .25],
                   [.5, 0, .5], [.75, .25, .75], [0, .5, .5], [.25, .75, .75]])
    return _rattle(s, 0.1, 0)


def mgo8() -> Structure:
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.25), ["Mg", "O"], [[0, 0, 0], [.5, .5, .5]])
    return _rattle(s, 0.1, 1)


def lco4() -> Structure:
    s = Structure.from_spacegroup("R-3m", Lattice.hexagonal(2.82, 14.05), ["Li", "Co", "O"],
                                  [[0, 0, .5], [0, 0, 0], [0, 0, .2604]]).get_primitive_structure()
    return _rattle(s, 0.1, 1)


@pytest.fixture(scope="module")
def potential():
    torch.set_num_threads(1)
    return R.load_potential()


@pytest.fixture(scope="module")
def ase_results(potential):
    return [R.relax_ase(s, potential) for s in (si8(), mgo8(), lco4())]


def _same(a: R.RelaxResult, b: R.RelaxResult, natoms: int) -> None:
    assert a.converged and b.converged
    assert abs(a.energy - b.energy) / natoms < 1e-3  # the bar: 1 meV/atom
    assert abs(a.energy - b.energy) / natoms < 1e-5  # what we actually get: same trajectory
    assert abs(a.steps - b.steps) <= 1
    diff = a.structure.cart_coords - b.structure.cart_coords
    assert np.abs(diff).max() < 1e-3
    assert b.fmax < 0.05 and a.fmax < 0.05


def test_batched_matches_ase_one_at_a_time(potential, ase_results):
    structures = [si8(), mgo8(), lco4()]
    assert all(r.converged and r.steps > 10 for r in ase_results)  # a real relaxation each
    calls = {}
    batched = list(batch.relax_stream(((i, str(i), s) for i, s in enumerate(structures)), potential,
                                   fmax=0.05, max_steps=1000, batch_size=3, stats=calls))
    batched = [r for _, r in sorted(batched, key=lambda t: t[0])]
    for a, b, s in zip(ase_results, batched, structures):
        _same(a, b, len(s))
        assert b.structure.lattice == s.lattice  # positions only
    # one model call per step for the whole batch, not one per structure
    assert calls["model_calls"] == max(r.steps for r in batched) + 1
    # the public entry point gives the same
    again = R.relax_batch(structures, potential)
    for a, b in zip(batched, again):
        assert a.energy == b.energy and a.steps == b.steps


def test_batched_energy_and_forces_equal_matgl_calculator(potential):
    """One batched call gives each structure the energy/forces of matgl's ASE calculator."""
    from matgl.ext.ase import PESCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    structures = [si8(), mgo8(), lco4()]
    runs = [fire.Relaxation(i, str(i), s,
                          torch.tensor([potential.model.element_types.index(x.specie.symbol) for x in s]),
                          float(potential.model.cutoff), 1.0) for i, s in enumerate(structures)]
    energies, forces = F.evaluate(P.no_stress(potential), runs)
    for s, e, f in zip(structures, energies, forces):
        atoms = AseAtomsAdaptor.get_atoms(s)
        atoms.calc = PESCalculator(potential, stress_unit="eV/A3")
        assert abs(float(e) - atoms.get_potential_energy()) < 1e-4
        np.testing.assert_allclose(f, atoms.get_forces(), atol=2e-4)


def test_fast_path_is_used_and_equals_matgl_forward(potential):
    """The batched engine evaluates with FastM3GNetPES; on the same positions it
    gives matgl's own batched forward (F.evaluate_matgl), and a whole relaxation follows the
    same trajectory either way (fast=False keeps matgl's forward)."""
    from dismai_data.physics.fast_m3gnet import FastM3GNetPES

    view = P.no_stress(potential)
    assert isinstance(F.fast_evaluator(view), FastM3GNetPES)
    structures = [si8(), mgo8(), lco4()]

    def runs():
        return [fire.Relaxation(i, str(i), s,
                              torch.tensor([potential.model.element_types.index(x.specie.symbol) for x in s]),
                              float(potential.model.cutoff), 1.0) for i, s in enumerate(structures)]

    rs = runs()
    for r in rs:  # the fast path's bonds are exactly graph_arrays' bonds
        src, dst, vec = r.bonds()
        s2, d2, images, frac = r.graph_arrays()
        np.testing.assert_array_equal(src, s2)
        np.testing.assert_array_equal(dst, d2)
        np.testing.assert_allclose(vec, (frac[d2] + images - frac[s2]) @ r.cell, atol=1e-12)
    e_fast, f_fast = F.evaluate(view, rs)
    e_ref, f_ref = F.evaluate_matgl(view, runs())
    np.testing.assert_allclose(e_fast, e_ref, atol=2e-4, rtol=0)
    for a, b in zip(f_fast, f_ref):
        np.testing.assert_allclose(a, b, atol=2e-4, rtol=0)
    stats_fast, stats_ref = {}, {}
    fast = R.relax_many(structures, potential=potential, progress=False, stats=stats_fast)
    ref = R.relax_many(structures, potential=potential, progress=False, fast=False, stats=stats_ref)
    for a, b, s in zip(ref, fast, structures):
        _same(a, b, len(s))
    assert stats_fast["model_calls"] == max(r.steps for r in fast) + 1
    assert stats_ref["model_calls"] == max(r.steps for r in ref) + 1


def test_batched_lbfgs_matches_ase_lbfgs(potential):
    """The optional LBFGS follows ase.optimize.LBFGS (its own L-BFGS state object)."""
    s = si8()
    ref = R.relax_ase(s, potential, optimizer="LBFGS")
    [got] = R.relax_batch([s], potential, optimizer="lbfgs")
    _same(ref, got, len(s))
    with pytest.raises(ValueError, match="optimizer 'BFGS' is not supported"):
        R.relax_batch([s], potential, optimizer="BFGS")


def test_not_converged_is_reported(potential):
    [r] = R.relax_batch([si8()], potential, max_steps=3)
    ref = R.relax_ase(si8(), potential, max_steps=3)
    assert not r.converged and r.steps == 3 == ref.steps and not ref.converged
    assert "not converged in 3 steps" in r.error
    assert r.structure is not None and r.fmax > 0.05
    assert abs(r.energy - ref.energy) < 1e-4


def test_resume_skips_finished_shards(potential, ase_results, tmp_path, monkeypatch):
    items = [("si", si8()), ("mgo", mgo8()), ("lco", lco4())]
    seen: list[str] = []
    real = F.evaluate

    def counting(pot, batch):
        seen.extend(r.key for r in batch)
        return real(pot, batch)

    # first run is killed after the first shard (si + mgo) is written
    def killing(pot, batch):
        if any(r.key == "lco" for r in batch) and list(tmp_path.glob("shard-*.parquet")):
            raise KeyboardInterrupt
        return counting(pot, batch)

    monkeypatch.setattr(F, "evaluate", killing)
    with pytest.raises(KeyboardInterrupt):
        R.relax_many(items, potential=potential, batch_size=1, shard_size=2, checkpoint_dir=tmp_path,
                     progress=False)
    shards = list(tmp_path.glob("shard-*.parquet"))
    assert len(shards) == 1
    stamp = shards[0].stat().st_mtime_ns
    assert not list(tmp_path.glob(".*tmp"))
    done = R.read_checkpoints(tmp_path)
    assert set(done) == {"si", "mgo"}

    seen.clear()
    monkeypatch.setattr(F, "evaluate", counting)
    results = R.relax_many(items, potential=potential, batch_size=1, shard_size=2, checkpoint_dir=tmp_path,
                           progress=False)
    assert set(seen) == {"lco"}  # finished shard not recomputed
    assert shards[0].stat().st_mtime_ns == stamp
    for a, b, (_, s) in zip(ase_results, results, items):
        _same(a, b, len(s))
    # a third run does no model call at all and returns the same results from the shards
    seen.clear()
    again = R.relax_many(items, potential=potential, checkpoint_dir=tmp_path, progress=False)
    assert seen == []
    for a, b in zip(results, again):
        assert a.energy == b.energy and a.steps == b.steps and a.converged == b.converged
        np.testing.assert_allclose(a.structure.frac_coords, b.structure.frac_coords, rtol=0, atol=1e-12)
    # shard rows are ordinary structure rows with the result columns
    import pyarrow.parquet as pq

    rows = [r for p in tmp_path.glob("shard-*.parquet") for r in pq.read_table(p).to_pylist()]
    assert {r["id"] for r in rows} == {"si", "mgo", "lco"}
    for r in rows:
        assert r["converged"] and r["relaxed"] and r["error"] is None and r["fmax"] < 0.05
        assert r["energy_per_atom"] == pytest.approx(r["energy"] / r["num_atoms"])
    # the same id with another input structure is refused
    with pytest.raises(R.RelaxInputError, match="'si'.*different input"):
        R.relax_many([("si", mgo8())], potential=potential, checkpoint_dir=tmp_path, progress=False)


def test_dask_local_cluster_matches_in_process(potential, ase_results):
    items = [("si", si8()), ("lco", lco4())]
    local = R.relax_many(items, potential=potential, batch_size=2, progress=False)
    dask = R.relax_many(items, potential=potential, batch_size=1, shard_size=1, scheduler="local", workers=2,
                        progress=False)
    for a, b, (_, s) in zip(local, dask, items):
        assert a.converged and b.converged
        assert abs(a.energy - b.energy) / len(s) < 1e-5
        assert abs(a.steps - b.steps) <= 1
        assert np.abs(a.structure.cart_coords - b.structure.cart_coords).max() < 1e-3
    _same(ase_results[0], dask[0], 8)


def test_compiled_engine_matches_ase_one_at_a_time(potential, ase_results):
    """fast="compile" (the fast path through torch.compile) relaxes to ASE's result: same
    trajectory up to float32 rounding; a bad ``fast`` value is refused by name."""
    structures = [si8(), lco4()]
    got = R.relax_batch(structures, potential, fast="compile")
    for a, b, s in zip([ase_results[0], ase_results[2]], got, structures):
        _same(a, b, len(s))
    with pytest.raises(ValueError, match="fast must be True, False or 'compile', got 'fastest'"):
        R.relax_many([si8()], potential=potential, progress=False, fast="fastest")


def test_cg_is_ase_scipy_fmin_cg_step_for_step():
    """The engine's CG (Dismai-Bench's fmin_cg protocol, :mod:`relax.cg`) against ASE's
    SciPyFminCG on one deterministic float64 potential (ASE's EMT): the same force calls, the
    same iterations and the same positions, converged or stopped by ``max_steps``."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.optimize.sciopt import OptimizerConvergenceError, SciPyFminCG
    from pymatgen.io.ase import AseAtomsAdaptor

    from dismai_data.physics.relax.cg import relax_cg

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.15, seed=3)
    s = AseAtomsAdaptor.get_structure(atoms)

    def evaluate(_potential, batch):
        b = atoms.copy()
        b.positions = batch[0].pos
        b.calc = EMT()
        return np.array([b.get_potential_energy()]), [b.get_forces()]

    outcomes = []
    for max_steps in (1000, 5):
        ref = atoms.copy()
        ref.calc = EMT()
        opt = SciPyFminCG(ref, logfile=None)
        try:
            opt.run(fmax=0.05, steps=max_steps)
        except OptimizerConvergenceError:
            pass
        stats: dict = {}
        r = fire.Relaxation(0, "cu", s, torch.zeros(len(s), dtype=torch.long), 5.0, 1.0, "CG")
        got = relax_cg(r, evaluate, None, fmax=0.05, max_steps=max_steps, stats=stats)
        assert got.steps == opt.nsteps and stats["model_calls"] == opt.force_calls
        np.testing.assert_allclose(got.structure.cart_coords, ref.positions, atol=1e-10, rtol=0)
        assert got.converged == bool(np.linalg.norm(ref.get_forces(), axis=1).max() < 0.05)
        assert got.structure.lattice == s.lattice
        outcomes.append((got.converged, got.steps))
    assert outcomes[0][0] and outcomes[0][1] > 5  # a real relaxation that converges ...
    assert outcomes[1] == (False, 5)  # ... and the same one stopped after 5 iterations
    assert "not converged in 5 steps" in got.error


def test_engine_cg_relaxes_to_ase_cg(potential):
    """With M3GNet, the engine's CG reaches what ASE's SciPyFminCG on matgl's calculator reaches.
    CG's line searches amplify float32 force rounding (the graph's summation order), so the
    paths agree in outcome, not to the bit."""
    structures = [si8(), mgo8(), lco4()]
    got = R.relax_many(structures, potential=potential, progress=False, optimizer="cg")
    for s, b in zip(structures, got):
        a = R.relax_ase(s, potential, optimizer="CG")
        assert a.converged and b.converged and a.fmax < 0.05 and b.fmax < 0.05
        assert abs(a.energy - b.energy) / len(s) < 1e-3
        assert abs(a.steps - b.steps) <= 2
        assert b.structure.lattice == s.lattice


def test_bad_input_names_the_item(potential):
    with pytest.raises(R.RelaxInputError, match="empty"):
        R.relax_many([], potential=potential, progress=False)
    with pytest.raises(R.RelaxInputError, match=r"item 2 \(id 'a'\): id repeated \(also item 0\)"):
        R.relax_many([("a", si8()), ("b", si8()), ("a", mgo8())], potential=potential, progress=False)
    bad = si8()
    coords = bad.frac_coords.copy()
    coords[3, 1] = np.nan
    bad = Structure(bad.lattice, bad.species, coords)
    with pytest.raises(R.RelaxInputError, match=r"item 1 \(id 'nan-one'\): site 3 has a non-finite coordinate"):
        R.relax_many([("ok", si8()), ("nan-one", bad)], potential=potential, progress=False)
    with pytest.raises(R.RelaxInputError, match="item 0 .*non-finite"):
        R.relax_ase(bad, potential)
    with pytest.raises(R.RelaxInputError, match="item 1 is a str"):
        R.relax_batch([si8(), "POSCAR"], potential)
    og = Structure(Lattice.cubic(5.0), ["Og"], [[0, 0, 0]])
    with pytest.raises(R.RelaxInputError, match="item 0 \\(id 'x'\\): element Og"):
        R.relax_many([("x", og)], potential=potential, progress=False)


def test_load_potential_offline_uses_packaged_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(P, "_POTENTIALS", {})
    p = R.load_potential(device="cpu")
    assert p.dismai_source == f"local:{R.local_weights_dir()}"
    assert "HF_HUB_OFFLINE" in p.dismai_fallback_reason
    assert R.load_potential(device="cpu") is p  # cached per (source, device)
    assert (R.local_weights_dir() / "model.pt").is_file()
    # a folder path loads that folder
    q = R.load_potential(R.local_weights_dir(), device="cpu")
    assert q.dismai_source.startswith("local:") and q is not p
    assert q.dismai_fallback_reason is None


def test_load_potential_falls_back_when_hub_unreachable(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(P, "_POTENTIALS", {})
    calls = []

    def failing(repo):
        calls.append(repo)
        raise OSError("connection refused (127.0.0.1:9)")

    monkeypatch.setattr(P, "_hub_snapshot", failing)
    p = R.load_potential(device="cpu")
    assert calls == [R.RELAXER_REPO]
    assert p.dismai_source.startswith("local:")
    assert "connection refused" in p.dismai_fallback_reason
    with pytest.raises(FileNotFoundError, match="neither a folder nor a hub repo id"):
        R.load_potential("/no/such/folder", device="cpu")


_FAULTS_SCRIPT = """
import ctypes, resource, sys
import numpy as np
from dismai_data.physics.relax import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "fix":
    assert keep_freed_memory()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
mmapped = []
for _ in range(30):
    a = np.ones((80000, 64), dtype=np.float32)  # 20 MB, like a batch's bond features
    mmapped.append(libc.mallinfo2().hblkhd)  # bytes malloc holds in mmapped chunks, a alive
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0, min(mmapped))
"""


def test_dask_workers_keep_freed_memory_instead_of_faulting_it_in_again():
    """Under Dask's MALLOC_TRIM_THRESHOLD_=65536 every large allocation is a fresh mmap, paid
    for in page faults (more than half a force call's CPU was kernel time); the shard task
    calls keep_freed_memory, after which the same allocations come from (and return to)
    malloc's heap and are faulted in once."""
    import inspect
    import os
    import subprocess
    import sys

    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536")
    out = {how: [int(x) for x in subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, how], env=env, check=True,
                                                capture_output=True, text=True).stdout.split()[-2:]]
           for how in ("plain", "fix")}
    (faults_plain, mmapped_plain), (faults_fix, mmapped_fix) = out["plain"], out["fix"]
    assert mmapped_plain >= 80000 * 64 * 4  # each 20 MB array is its own mmap
    assert mmapped_fix < 80000 * 64 * 4  # ... and with the fix it is heap memory
    assert faults_plain > 5 * faults_fix  # faulted in 30 times vs once
    assert "keep_freed_memory()" in inspect.getsource(cluster.relax_shard_task)
