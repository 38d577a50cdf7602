"""dismai_data.physics.matgl_fix and fast_m3gnet: the packaged M3GNet-MP-2021.2.8-PES weights under matgl 4.1.2
reproduce matgl's own published reference energies once the graph-convolution node update
sums into the destination atom again (see the module docstring for the bug)."""

from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
matgl = pytest.importorskip("matgl")
from pymatgen.core import Lattice, Molecule, Structure  # noqa: E402
from pymatgen.io.ase import AseAtomsAdaptor  # noqa: E402

from dismai_data.physics import cpu, fast_m3gnet, matgl_fix  # noqa: E402
from dismai_data.physics import onednn as dnn  # noqa: E402
from dismai_data.physics.fast_m3gnet import FastM3GNetPES  # noqa: E402
from dismai_data.physics.relax import local_weights_dir  # noqa: E402

WEIGHTS = local_weights_dir()

# Ac-Ala3-NHMe, the molecule fixture ``AcAla3NHMe`` of matgl's tests/conftest.py (Angstrom).
_ACALA_SPECIES = "H H H C O C N H C H C C O H H H N H C H C C O H H H N H C H C C O H H H N H C H H H".split()
_ACALA_COORDS = [
    [2.04866000, 3.03970000, -1.90538000], [2.57508000, 1.72268000, -0.85631500],
    [2.17184000, 3.30896000, -0.15238200], [1.90655000, 2.58401000, -0.92348000],
    [0.03771400, 1.25465000, -1.59488000], [0.48396700, 2.10062000, -0.82751300],
    [-0.28972800, 2.66225000, 0.13607100], [0.16103700, 3.23064000, 0.83232600],
    [-1.66536000, 2.24227000, 0.38856700], [-1.98080000, 2.78577000, 1.28200000],
    [-2.60093000, 2.60713000, -0.76094600], [-1.65737000, 0.76935300, 0.84076700],
    [-1.07671000, 0.46484900, 1.87157000], [-3.62795000, 2.31590000, -0.52731400],
    [-2.58345000, 3.68786000, -0.91203300], [-2.28934000, 2.13627000, -1.69468000],
    [-2.28796000, -0.13783200, 0.06597500], [-2.61433000, 0.15084400, -0.84271100],
    [-2.21633000, -1.56248000, 0.35525800], [-2.49106000, -1.71026000, 1.40128000],
    [-3.17539000, -2.32986000, -0.54719400], [-0.79661200, -2.15180000, 0.24417300],
    [-0.54538500, -3.20721000, 0.79546200], [-3.09773000, -3.39555000, -0.33182000],
    [-4.20586000, -2.01059000, -0.37590300], [-2.92852000, -2.17659000, -1.60274000],
    [0.08518600, -1.43854000, -0.48961600], [-0.20393600, -0.57022000, -0.92587000],
    [1.49370000, -1.76346000, -0.59747700], [1.62352000, -2.74612000, -0.13439600],
    [1.93595000, -1.80971000, -2.05523000], [2.37375000, -0.79291000, 0.21284200],
    [3.55545000, -0.63911100, -0.05660100], [3.00626000, -2.00417000, -2.11517000],
    [1.39238000, -2.59759000, -2.58040000], [1.73079000, -0.85338400, -2.54426000],
    [1.77244000, -0.14321700, 1.23186000], [0.79538700, -0.29827700, 1.43700000],
    [2.52442000, 0.70798900, 2.12658000], [3.17617000, 0.12474300, 2.78380000],
    [3.15630000, 1.39339000, 1.55717000], [1.81944000, 1.27508000, 2.73527000],
]


def ac_ala3_nhme() -> Molecule:
    return Molecule(_ACALA_SPECIES, _ACALA_COORDS)


def mos() -> Structure:
    """matgl tests/conftest.py fixture ``MoS``: CsCl-type Mo-S, cubic a = 4.0 A."""
    return Structure(Lattice.cubic(4.0), ["Mo", "S"], [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])


def si8() -> Structure:
    return Structure(Lattice.cubic(5.43), ["Si"] * 8,
                     [[0, 0, 0], [.25, .25, .25], [.5, .5, 0], [.75, .75, .25],
                      [.5, 0, .5], [.75, .25, .75], [0, .5, .5], [.25, .75, .75]])


def rocksalt(a: float, cation: str, anion: str) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [.5, .5, .5]])


def _load():
    torch.set_num_threads(1)
    if not (WEIGHTS / "model.pt").is_file():
        pytest.skip(f"packaged weights not found at {WEIGHTS}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return matgl.load_model(WEIGHTS)


@pytest.fixture(scope="module")
def fixed():
    return matgl_fix.fix_potential(_load())


def _energy_stress(potential, obj):
    """(total energy eV, mean normal stress GPa or None) from matgl's ASE calculator."""
    from matgl.ext.ase import PESCalculator

    atoms = AseAtomsAdaptor.get_atoms(obj)
    atoms.calc = PESCalculator(potential, stress_unit="GPa")
    e = float(atoms.get_potential_energy())
    stress = float(np.mean(atoms.get_stress()[:3])) if isinstance(obj, Structure) else None
    return e, stress


def test_mos_matches_matgl_reference(fixed):
    # matgl tests/ext/test_ase.py::test_PESCalculator_and_M3GNetCalculator:
    #   load_model("pretrained_models/M3GNet-MP-2021.2.8-PES/") on the MoS fixture,
    #   np.testing.assert_allclose(s_ase.get_potential_energy(), -10.824362)
    e, _ = _energy_stress(fixed, mos())
    assert e == pytest.approx(-10.824362, abs=2e-4)


def test_molecule_matches_matgl_reference(fixed):
    # matgl tests/ext/test_ase.py::test_PESCalculator_mol:
    #   same potential on the AcAla3NHMe fixture (42 atoms; H, C, N, O),
    #   np.testing.assert_allclose(mol.get_potential_energy(), -250.16803)
    e, _ = _energy_stress(fixed, ac_ala3_nhme())
    assert e == pytest.approx(-250.16803, abs=2e-3)


def test_diamond_si_unchanged(fixed):
    # Elemental crystal with equivalent atoms: the aggregation direction does not matter.
    e, _ = _energy_stress(fixed, si8())
    assert e / 8 == pytest.approx(-5.419, abs=2e-3)
    raw, _ = _energy_stress(_load(), si8())
    assert e == pytest.approx(raw, abs=1e-4)


def test_rocksalt_compounds_physical(fixed):
    # Sanity (not matgl reference numbers): MP-compatible PBE energies of rock-salt MgO
    # (about -5.9 eV/atom at a ~ 4.21-4.25 A) and NaCl (about -3.4 eV/atom), a smooth E(a) with
    # its minimum near the experimental lattice constant, and a stress that changes sign there.
    energies = {}
    stresses = {}
    for a in (4.0, 4.1, 4.2, 4.3, 4.4):
        e, s = _energy_stress(fixed, rocksalt(a, "Mg", "O"))
        energies[a], stresses[a] = e / 8, s
    assert energies[4.2] == pytest.approx(-5.95, abs=0.1)
    assert min(energies, key=energies.get) in (4.2, 4.3)
    assert energies[4.0] > energies[4.1] > energies[4.2]
    assert energies[4.4] > energies[4.3]
    assert stresses[4.0] < 0 < stresses[4.4]
    e, _ = _energy_stress(fixed, rocksalt(5.64, "Na", "Cl"))
    assert e / 8 == pytest.approx(-3.4, abs=0.15)


def test_idempotent_scoped_and_copyable(fixed):
    from matgl.layers._graph_convolution import M3GNetGraphConv

    assert matgl_fix.is_fixed(fixed)
    convs = [m for m in fixed.model.modules() if isinstance(m, M3GNetGraphConv)]
    assert len(convs) == 3 and all(type(m) is matgl_fix.LegacyM3GNetGraphConv for m in convs)
    assert matgl_fix.fix_potential(fixed) is fixed and matgl_fix.is_fixed(fixed)
    # only the instance passed in changes
    other = _load()
    assert not matgl_fix.is_fixed(other)
    assert all(type(m) is M3GNetGraphConv for m in other.model.modules() if isinstance(m, M3GNetGraphConv))
    # copies keep the fix (a matgl Potential does not pickle at all: its basis holds
    # sympy-lambdified functions; dismai_data.physics.relax reloads it on Dask workers instead)
    # (deepcopy a fresh one: after a forward pass matgl's model holds non-leaf tensors in
    # ``feature_dict``, which torch refuses to deepcopy, fixed or not)
    clone = copy.deepcopy(matgl_fix.fix_potential(_load()))
    assert matgl_fix.is_fixed(clone)
    assert _energy_stress(clone, mos())[0] == pytest.approx(-10.824362, abs=2e-4)


# --------------------------------------------------------------------------- FastM3GNetPES


def _bonds(s: Structure, cutoff: float):
    """Every bond within ``cutoff`` (both directions, no atom with itself), as matgl's
    Structure2Graph finds them (pymatgen's find_points_in_spheres), with float64 vectors."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    cart = np.ascontiguousarray(s.cart_coords, dtype=float)
    lat = np.ascontiguousarray(s.lattice.matrix, dtype=float)
    src, dst, images, dist = find_points_in_spheres(cart, cart, r=cutoff, pbc=np.array([1, 1, 1], dtype=np.int64),
                                                    lattice=lat, tol=1e-8)
    keep = (src != dst) | np.any(images != 0, axis=1)
    src, dst, images = src[keep].astype(np.int64), dst[keep].astype(np.int64), images[keep].astype(float)
    return src, dst, cart[dst] + images @ lat - cart[src]


def _fast_vs_calculator(potential, structures, fast=None):
    """(max |dE| eV, max |dF| eV/A, max |F|) of FastM3GNetPES (``fast``, default a new eager
    one) on the batch of ``structures`` against matgl's PESCalculator one structure at a time."""
    from matgl.ext.ase import PESCalculator

    fast = fast if fast is not None else FastM3GNetPES(potential)
    index = {el: i for i, el in enumerate(potential.model.element_types)}
    types, srcs, dsts, vecs, graph = [], [], [], [], []
    start = 0
    for k, s in enumerate(structures):
        src, dst, vec = _bonds(s, float(potential.model.cutoff))
        types.append(torch.tensor([index[site.specie.symbol] for site in s]))
        srcs.append(src + start)
        dsts.append(dst + start)
        vecs.append(vec)
        graph.append(np.full(len(s), k))
        start += len(s)
    # shuffle the bond order: the result must not depend on it (matgl's graphs are sorted by source)
    order = np.random.default_rng(0).permutation(sum(len(x) for x in srcs))
    energies, forces = fast.energies_forces(
        torch.cat(types), torch.from_numpy(np.concatenate(srcs)[order]), torch.from_numpy(np.concatenate(dsts)[order]),
        torch.from_numpy(np.concatenate(vecs)[order]), torch.from_numpy(np.concatenate(graph)), len(structures))
    de = df = fm = 0.0
    start = 0
    for k, s in enumerate(structures):
        atoms = AseAtomsAdaptor.get_atoms(s)
        atoms.calc = PESCalculator(potential, stress_unit="GPa")
        ref_e, ref_f = float(atoms.get_potential_energy()), atoms.get_forces()
        de = max(de, abs(float(energies[k]) - ref_e))
        df = max(df, float(np.abs(forces[start:start + len(s)].numpy() - ref_f).max()))
        fm = max(fm, float(np.abs(ref_f).max()))
        start += len(s)
    return de, df, fm


def _rattled(s: Structure, seed: int, sd: float = 0.15) -> Structure:
    rng = np.random.default_rng(seed)
    return Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, sd, (len(s), 3)), coords_are_cartesian=True)


def _small_set():
    lco = Structure.from_spacegroup("R-3m", Lattice.hexagonal(2.82, 14.05), ["Li", "Co", "O"],
                                    [[0, 0, .5], [0, 0, 0], [0, 0, .2604]]).get_primitive_structure()
    lco.make_supercell([2, 2, 1])
    return [_rattled(mos(), 1, 0.1), _rattled(si8(), 2), _rattled(rocksalt(4.21, "Mg", "O"), 3),
            _rattled(lco, 4), _rattled(rocksalt(5.64, "Na", "Cl"), 5)]


def test_fast_path_equals_matgl_calculator(fixed):
    """The fast exact evaluation (moments instead of the line graph, split first layers) gives
    matgl's own energies and forces on the same structures, batched and with bonds shuffled."""
    de, df, fm = _fast_vs_calculator(fixed, _small_set())
    assert fm > 1.0  # rattled: real forces to compare
    assert de < 2e-4  # float32 total energies of up to ~ -100 eV
    assert df < 2e-4


@pytest.mark.parametrize("onednn", [True, False], ids=["oneDNN products", "torch mm products"])
def test_compiled_fast_path_equals_matgl_calculator(fixed, monkeypatch, onednn):
    """The same fast path through torch.compile (inductor's fused kernels), with either choice of
    matrix products (the default depends on the CPU: compiled_products_by_mkl): matgl's energies
    and forces again, batched and with bonds shuffled; it compiles where a C++ compiler exists,
    and it leaves the caller's potential as it was (the compiled graph uses a private copy of
    the model whose parameters need no gradient)."""
    import shutil

    if onednn and not dnn.onednn_matmul_usable("cpu", torch.float32):
        pytest.skip("oneDNN float32 products are not usable on this machine")
    fast = FastM3GNetPES(fixed, compile=True, onednn=onednn)
    assert fast.onednn is onednn
    de, df, fm = _fast_vs_calculator(fixed, _small_set(), fast=fast)
    assert fm > 1.0
    assert de < 2e-4 and df < 2e-4
    if shutil.which("c++") or shutil.which("g++"):
        assert fast.compiled, "torch.compile fell back to eager on a machine with a C++ compiler"
    assert fast.model is not fixed.model
    assert all(p.requires_grad for p in fixed.model.parameters())
    assert not any(p.requires_grad for p in fast.model.parameters())
    # another batch size and other atom counts reuse the compiled code (dynamic shapes), and so
    # does a call without padding bonds (a bond count that is a multiple of the bucket: once
    # the mask was None then, and every such relaxation step recompiled)
    from torch._dynamo.utils import counters

    frames = counters["frames"]["total"]
    de, df, _ = _fast_vs_calculator(fixed, _small_set()[1:3], fast=fast)
    assert de < 2e-4 and df < 2e-4
    monkeypatch.setattr(fast_m3gnet, "_BOND_BUCKET", 1)
    de, df, _ = _fast_vs_calculator(fixed, _small_set()[3:4], fast=fast)
    assert de < 2e-4 and df < 2e-4
    if fast.compiled:
        assert counters["frames"]["total"] == frames, "a call recompiled the graph"


def test_onednn_and_plain_matrix_products_both_equal_matgl_calculator(fixed):
    """The matrix products through oneDNN (the default where it is usable) and through torch's
    own ``F.linear`` (MKL here) give matgl's energies and forces alike, and each other's to
    float32 rounding."""
    plain = FastM3GNetPES(fixed, onednn=False)
    assert not plain.onednn
    de, df, fm = _fast_vs_calculator(fixed, _small_set(), fast=plain)
    assert fm > 1.0 and de < 2e-4 and df < 2e-4
    if not dnn.onednn_matmul_usable("cpu", torch.float32):
        pytest.skip("oneDNN float32 products are not usable on this machine")
    fast = FastM3GNetPES(fixed)
    assert fast.onednn  # the default where usable
    de, df, _ = _fast_vs_calculator(fixed, _small_set(), fast=fast)
    assert de < 2e-4 and df < 2e-4


def test_onednn_linear_value_and_input_gradient_equal_torch_linear():
    """``dismai::onednn_linear``: x W^T + b and its input gradient g W equal F.linear's and
    autograd's on the same numbers (float32 rounding), for the shapes the model uses; it asks
    for no weight gradient."""
    if not dnn.onednn_matmul_usable("cpu", torch.float32):
        pytest.skip("oneDNN float32 products are not usable on this machine")
    gen = torch.Generator().manual_seed(1)
    for op, (rows, k, m, bias) in itertools.product(
            dnn.onednn_linear_ops(), ((1000, 64, 64, True), (777, 9, 64, False), (13, 64, 128, True))):
        w = torch.randn(m, k, generator=gen)
        b = torch.randn(m, generator=gen) if bias else None
        x = torch.randn(rows, k, generator=gen, requires_grad=True)
        g = torch.randn(rows, m, generator=gen)
        y = op(x, w, b)
        (gx,) = torch.autograd.grad(y, x, g)
        x_ref = x.detach().clone().requires_grad_(True)
        y_ref = torch.nn.functional.linear(x_ref, w, b)
        (gx_ref,) = torch.autograd.grad(y_ref, x_ref, g)
        assert y.shape == y_ref.shape and gx.shape == gx_ref.shape
        assert torch.allclose(y, y_ref, rtol=1e-5, atol=1e-4)
        assert torch.allclose(gx, gx_ref, rtol=1e-5, atol=1e-4)


def test_padding_bonds_changes_no_number(fixed, monkeypatch):
    """With oneDNN products the bonds are padded to a multiple of _BOND_BUCKET with inert
    bonds (so that oneDNN's kernels for each row count are reused between relaxation steps);
    the energies and forces are exactly those without padding, and the padded call sees a row
    count that is a multiple of the bucket."""
    if not dnn.onednn_matmul_usable("cpu", torch.float32):
        pytest.skip("oneDNN float32 products are not usable on this machine")
    s = _small_set()[3]
    src, dst, vec = _bonds(s, float(fixed.model.cutoff))
    index = {el: i for i, el in enumerate(fixed.model.element_types)}
    args = (torch.tensor([index[site.specie.symbol] for site in s]), torch.from_numpy(src), torch.from_numpy(dst),
            torch.from_numpy(vec), torch.zeros(len(s), dtype=torch.long), 1)
    fast = FastM3GNetPES(fixed)
    assert len(src) % fast_m3gnet._BOND_BUCKET != 0  # this structure needs padding
    rows = []
    atomic = fast._forward
    fast._forward = lambda *a: rows.append(int(a[1].shape[0])) or atomic(*a)
    e_pad, f_pad = fast.energies_forces(*args)
    assert rows[-1] % fast_m3gnet._BOND_BUCKET == 0 and rows[-1] > len(src)
    monkeypatch.setattr(fast_m3gnet, "_BOND_BUCKET", 1)
    e, f = fast.energies_forces(*args)
    assert rows[-1] == len(src)
    assert torch.equal(e_pad, e) and torch.equal(f_pad, f)


def test_threebody_block_on_bonds_within_its_cutoff_equals_every_bond(fixed):
    """The three-body block on the bonds within the three-body cutoff only (the default) gives the
    energies and forces of the block on every bond, and matgl's; a model whose bond update does
    not map 0 to 0 (a bias added) runs it on every bond, and threebody_subset=True says why."""
    structures = _small_set()
    every = FastM3GNetPES(fixed, threebody_subset=False)
    subset = FastM3GNetPES(fixed)
    assert subset._tb_subset and not every._tb_subset
    _, _, vec = _bonds(structures[3], float(fixed.model.cutoff))
    tb = subset._threebody_bonds(torch.from_numpy(vec).float())
    inside = int((np.linalg.norm(vec, axis=1) <= subset.threebody_cutoff).sum())
    assert 0 < inside < len(vec)  # some bonds beyond 4 A: the subset is smaller
    assert len(torch.unique(tb)) == inside + (len(tb) > inside)  # padded with one bond beyond it
    de, df, fm = _fast_vs_calculator(fixed, structures, fast=subset)
    assert fm > 1.0 and de < 2e-4 and df < 2e-4
    de2, df2, _ = _fast_vs_calculator(fixed, structures, fast=every)
    assert de2 < 2e-4 and df2 < 2e-4
    biased = matgl_fix.fix_potential(_load())
    lin = biased.model.three_body_interactions[0].update_network_bond.layers[0]
    lin.bias = torch.nn.Parameter(torch.full((lin.out_features,), 0.1))
    assert not FastM3GNetPES(biased)._tb_subset
    with pytest.raises(NotImplementedError, match="does not map 0 to 0"):
        FastM3GNetPES(biased, threebody_subset=True)


@pytest.mark.parametrize("vendor", ["GenuineIntel", "AuthenticAMD", ""])
def test_default_products_by_cpu_vendor(fixed, monkeypatch, vendor):
    """The default matrix products: oneDNN in eager evaluation wherever it is usable; compiled,
    torch's own mm (MKL) on an Intel CPU with MKL and oneDNN on any other CPU (AMD, unknown)."""
    monkeypatch.setattr(cpu, "cpu_vendor", lambda: vendor)
    usable = dnn.onednn_matmul_usable("cpu", torch.float32)
    mkl = torch.backends.mkl.is_available() and vendor == "GenuineIntel"
    assert cpu.compiled_products_by_mkl() is mkl
    assert FastM3GNetPES(fixed).onednn is usable
    assert FastM3GNetPES(fixed, compile=True).onednn is (usable and not mkl)
    # an explicit choice wins over the vendor
    assert FastM3GNetPES(fixed, compile=True, onednn=False).onednn is False


def test_cpu_vendor_reads_proc_cpuinfo():
    vendor = cpu.cpu_vendor()
    if Path("/proc/cpuinfo").is_file() and "vendor_id" in Path("/proc/cpuinfo").read_text():
        assert vendor and vendor in Path("/proc/cpuinfo").read_text()
    else:
        assert vendor == ""


def test_onednn_refused_where_it_is_not_usable(fixed, monkeypatch):
    """Where the oneDNN check fails (no oneDNN in the torch build, another device or dtype),
    the default falls back to torch's own products and an explicit onednn=True says why."""
    assert not dnn.onednn_matmul_usable("cpu", torch.float64)
    assert not dnn.onednn_matmul_usable("meta", torch.float32)
    monkeypatch.setattr(dnn, "_ONEDNN_OK", False)
    assert not FastM3GNetPES(fixed).onednn
    with pytest.raises(NotImplementedError, match="oneDNN float32 matrix products are not usable"):
        FastM3GNetPES(fixed, onednn=True)


def test_compile_failure_falls_back_to_eager(fixed, monkeypatch, caplog):
    """Where torch.compile cannot compile (no C++ compiler, an unsupported platform), the first
    call says so in the log and the evaluation goes on eagerly, with the eager numbers."""
    import logging

    def broken_compile(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    fast = FastM3GNetPES(fixed, compile=True)
    assert fast.compiled
    eager = FastM3GNetPES(fixed)
    s = _small_set()[3]
    src, dst, vec = _bonds(s, float(fixed.model.cutoff))
    index = {el: i for i, el in enumerate(fixed.model.element_types)}
    args = (torch.tensor([index[site.specie.symbol] for site in s]), torch.from_numpy(src), torch.from_numpy(dst),
            torch.from_numpy(vec), torch.zeros(len(s), dtype=torch.long), 1)
    with caplog.at_level(logging.WARNING, logger="dismai_data.physics.fast_m3gnet"):
        e, f = fast.energies_forces(*args)
    assert not fast.compiled
    assert "torch.compile failed" in caplog.text and "no C++ compiler found" in caplog.text
    e0, f0 = eager.energies_forces(*args)
    assert torch.equal(e, e0) and torch.equal(f, f0)


def test_fast_path_keeps_only_the_nonzero_three_body_terms_whatever_the_thread_count(fixed):
    """Y_0 = c, Y_1 = c x, Y_2 = c (3x^2 - 1): per radial index n, 1 + 3 + 7 monomial terms, so
    33 (column, monomial) pairs for max_n = max_l = 3 -- with 1 or 2 LAPACK/torch threads (the
    solve's ~1e-17 residues once kept 51 to 90 of them, depending on the thread count)."""
    counts = set()
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            fast = FastM3GNetPES(fixed)
            counts.add(len(fast._pair_col))
            assert fast.max_n == 3 and fast.max_l == 3
            assert float(fast._pair_coef.abs().min()) > 0.1
    finally:
        torch.set_num_threads(threads)
    assert counts == {33}


def test_fast_path_follows_the_aggregation_of_each_conv():
    """Unfixed (matgl 4.1.2's source-atom aggregation) the fast path computes that function too."""
    raw = _load()
    de, df, _ = _fast_vs_calculator(raw, _small_set()[2:4])
    assert de < 2e-4 and df < 2e-4
    # and the two functions really differ on these compounds
    fixed_pot = matgl_fix.fix_potential(_load())
    s = _small_set()[2]
    e_raw = _energy_stress(raw, s)[0]
    e_fixed = _energy_stress(fixed_pot, s)[0]
    assert abs(e_raw - e_fixed) > 1.0


def test_fast_path_refuses_what_it_does_not_compute():
    from matgl.layers._three_body import ThreeBodyInteractions

    with pytest.raises(NotImplementedError, match="not an M3GNet"):
        FastM3GNetPES(object())
    odd = matgl_fix.fix_potential(_load())
    odd.model.basis_expansion.use_phi = True
    with pytest.raises(NotImplementedError, match="use_phi=True"):
        FastM3GNetPES(odd)
    odd = matgl_fix.fix_potential(_load())

    class OtherThreeBody(ThreeBodyInteractions):
        pass

    odd.model.three_body_interactions[0].__class__ = OtherThreeBody
    with pytest.raises(NotImplementedError, match="three-body block OtherThreeBody"):
        FastM3GNetPES(odd)
