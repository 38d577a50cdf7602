"""CryinGAN's fast pieces equal the straightforward ones on the same inputs (values and
gradients), the neighbour distances agree with pymatgen, and slab cells of different
vacuum lengths are put into one lattice without moving any atom (issue 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from dismai_data.errors import StructureError
from dismai_data.models.cryingan import (
    CryinGAN,
    _gradient_penalty,
    _wasserstein,
    neighbor_distances,
    neighbor_distances_reference,
    training_tensor,
)
from dismai_data.structure import make_row

torch.set_num_threads(1)
# the interface build's cell (a, b in plane at 78.4 degrees, c along the normal) and the alloy cube
INTERFACE_LATTICE = [[12.3860624813, 0.0, 0.0], [3.4998064498, 17.010454565, 0.0], [0.0, 0.0, 33.2]]
ALLOY_LATTICE = (np.eye(3) * 14.4).tolist()
SMALL = dict(gen_channels=[8, 8, 8, 8], disc_channels=[16, 16, 8], disc_hidden=[16, 8], latent_dim=8)


@pytest.mark.parametrize("lattice,n", [(INTERFACE_LATTICE, 264), (ALLOY_LATTICE, 256)])
def test_fast_neighbor_distances_equal_the_reference_in_value_and_gradient(lattice, n):
    rng = np.random.default_rng(3)
    lat = torch.tensor(lattice, dtype=torch.float64)
    frac = torch.tensor(rng.random((5, n, 3)), requires_grad=True)  # 5: not a multiple of the chunk size
    weights = torch.tensor(rng.normal(size=(5, n, 6)))
    fast = neighbor_distances(frac, lat, 6)
    ref = neighbor_distances_reference(frac, lat, 6)
    np.testing.assert_allclose(fast.detach().numpy(), ref.detach().numpy(), rtol=0, atol=1e-12)
    (g_fast,) = torch.autograd.grad((fast * weights).sum(), frac)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), frac)
    assert g_ref.abs().max() > 1.0  # a real gradient, not zeros
    np.testing.assert_allclose(g_fast.numpy(), g_ref.numpy(), rtol=0, atol=1e-10)
    with torch.no_grad():  # the no-autograd path returns the same numbers
        np.testing.assert_allclose(neighbor_distances(frac, lat, 6).numpy(), ref.detach().numpy(), atol=1e-12)


def test_neighbor_distances_match_pymatgen_on_a_skewed_cell():
    rng = np.random.default_rng(5)
    lat = np.array(INTERFACE_LATTICE)
    frac = rng.random((264, 3))
    got = neighbor_distances(torch.tensor(frac[None]), torch.tensor(lat), 6).numpy()[0]
    assert got.max() < 0.5 * 12.13  # within half the narrowest width: minimum image is exact
    s = Structure(Lattice(lat), ["Li"] * 264, frac)
    want = np.array([sorted(nb.nn_distance for nb in nbs)[:6] for nbs in s.get_all_neighbors(7.0)])
    np.testing.assert_allclose(got, want, atol=1e-8)


def _model(**kw) -> CryinGAN:
    torch.manual_seed(0)
    return CryinGAN(blocks=[["Li", 7], ["Co", 3], ["O", 6]], lattice=INTERFACE_LATTICE, lam=0.05, **SMALL, **kw)


def test_block_pooling_equals_the_mean_over_each_species_block_with_gradient_penalty():
    m = _model().double()
    rng = np.random.default_rng(0)
    real = torch.tensor(rng.random((6, 16, 3)))
    fake = torch.tensor(rng.random((6, 16, 3)))
    for d in (m.d_coord, m.d_bond):
        x = real if d is m.d_coord else m.bonds(real)
        y = fake if d is m.d_coord else m.bonds(fake)
        np.testing.assert_allclose(d(x).detach().numpy(), d.forward_reference(x).detach().numpy(), atol=1e-12)
        grads = []
        for name in ("forward", "forward_reference"):
            fwd = getattr(d, name)

            class _D(torch.nn.Module):  # the same weights, one or the other forward
                def forward(self, z, f=fwd):
                    return f(z)

            d.zero_grad()
            gp = _gradient_penalty(_D(), x, y, torch.Generator().manual_seed(4))
            (fwd(y).mean() - fwd(x).mean() + 10 * gp).backward()
            grads.append((float(gp.detach()), [p.grad.clone() for p in d.parameters()]))
        (gp_a, ga), (gp_b, gb) = grads
        assert gp_a > 0 and abs(gp_a - gp_b) < 1e-12
        assert sum(int((b != 0).sum()) for b in gb) > 0.9 * sum(b.numel() for b in gb)  # real gradients
        for a, b in zip(ga, gb):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-13)


def test_one_pass_wasserstein_equals_two_passes():
    m = _model().double()
    rng = np.random.default_rng(1)
    real, fake = torch.tensor(rng.random((5, 16, 3))), torch.tensor(rng.random((4, 16, 3)))
    one = _wasserstein(m.d_coord, fake, real)
    two = m.d_coord(fake).mean() - m.d_coord(real).mean()
    assert abs(float((one - two).detach())) < 1e-12
    g1 = torch.autograd.grad(one, list(m.d_coord.parameters()))
    g2 = torch.autograd.grad(two, list(m.d_coord.parameters()))
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12)


def test_pooling_matrix_is_not_in_the_checkpoint(tmp_path):
    m = _model()
    assert not any(k.endswith(("member", "counts")) for k in m.state_dict())
    m.save_pretrained(tmp_path)
    m2 = CryinGAN.from_pretrained(tmp_path)
    np.testing.assert_array_equal(m2.sample_frac(2, seed=1), m.sample_frac(2, seed=1))
    assert torch.equal(m2.d_coord.member, m.d_coord.member) and torch.equal(m2.d_bond.counts, m.d_bond.counts)


def _slab_row(i, c, shift, rng, vacuum_wrap=False):
    """A 16-atom slab (z from 1 to 9 Å) in a cell with c = ``c``; ``vacuum_wrap`` puts the
    slab across z = 0 as stored rows may."""
    lat = np.array([[6.0, 0, 0], [1.5, 7.0, 0], [0, 0, c]])
    xy = rng.random((16, 2))
    z = 1.0 + 8.0 * rng.random(16) + shift
    if vacuum_wrap:
        z = z - 3.0  # some atoms below z = 0
    frac = np.column_stack([xy, z / c])
    return make_row(["Li"] * 8 + ["O"] * 8, frac, lat, f"slab{i}", symmetry=False)


def test_slabs_with_different_vacuum_go_into_the_longest_cell_with_positions_kept():
    rng = np.random.default_rng(2)
    rows = [_slab_row(0, 20.0, 0.0, rng), _slab_row(1, 22.5, 0.5, rng, vacuum_wrap=True),
            _slab_row(2, 21.0, 0.2, rng)]
    with pytest.raises(StructureError, match=r"row 'slab1' \(index 1\).*field 'lattice'"):
        training_tensor(rows)
    data, blocks, lat = training_tensor(rows, vacuum_axis=2)
    assert lat[2, 2] == 22.5 and blocks == [("Li", 8), ("O", 8)]
    for i, row in enumerate(rows):  # every interatomic distance is unchanged (pymatgen on both cells)
        orig = Structure(row["lattice"], row["species"], row["frac_coords"])
        new = Structure(lat, row["species"], data[i].double().numpy())
        np.testing.assert_allclose(new.distance_matrix, orig.distance_matrix, atol=1e-4)
    thin = [_slab_row(0, 20.0, 0.0, rng), _slab_row(3, 10.0, 0.0, rng)]  # 10 Å cell, 8 Å slab: no vacuum
    with pytest.raises(StructureError, match=r"row 'slab3' \(index 1\), field 'frac_coords'.*vacuum"):
        training_tensor(thin, vacuum_axis=2)
    other = rows + [make_row(["Li"] * 8 + ["O"] * 8, np.array(rows[0]["frac_coords"]),
                             [[6.2, 0, 0], [1.5, 7.0, 0], [0, 0, 20.0]], "slab4", symmetry=False)]
    with pytest.raises(StructureError, match=r"row 'slab4' \(index 3\).*field 'lattice'"):
        training_tensor(other, vacuum_axis=2)
