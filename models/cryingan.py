"""CryinGAN (Dismai-Bench paper 000, section 2.4 and Methods 4.2.5), written from the
paper's description.

- **Generator**: Gaussian noise (``latent_dim``) -> a linear layer to
  ``gen_channels x N`` -> per-atom 1 x 3 transposed convolution and two 1 x 1
  transposed convolutions (batch norm, ReLU) -> one channel -> sigmoid: the N x 3
  fractional coordinates of a fixed composition and lattice. Atoms come out in species
  blocks (e.g. Cr51, Fe154, Ni51).
- **Two discriminators of the same architecture**: one reads the fractional
  coordinates (N x 3), the other the distances from each atom to its 6 nearest
  neighbours under periodic boundary conditions (N x 6). The first convolution is 1 x k
  (each atom's row separately), then 1 x 1 convolutions (LeakyReLU 0.2), then **average
  pooling over each species block** (so D is invariant to atom order within a block),
  concatenation and a small MLP to one score.
- **Loss**: Wasserstein with gradient penalty (mu = 10) on random interpolations between
  real and generated inputs, ``L_D = L_coord + lambda * L_bond``,
  ``L_G = -(D_coord(G(z)) + lambda * D_bond(G(z)))``. Adam (lr 5e-5, betas (0.5, 0.999))
  for all three networks, batch 32, the generator updated once every 5 batches.
- **Periodic coordinate features** (``coord_frequencies = K > 0``; not in the paper, whose
  coordinate discriminator reads the raw fractional coordinates, ``K = 0``, the default):
  the coordinate discriminator reads ``sin, cos(2 pi k x)``, k = 1..K, of each fractional
  coordinate, so x and x + 1 look the same (the raw form sees an atom at 0.99 as unlike
  the training rows, whose coordinates are wrapped into [0, 1) with lattice planes at 0)
  and a lattice plane 1/K apart is one feature.
- **Per-atom start** (``atom_init = s > 0``; not in the paper): the generator's first layer
  starts with per-atom biases drawn from N(0, s) and noise weights scaled by 0.1. With
  the default start every atom's position is a different random function of the noise;
  the alloy generator then spread its atoms uniformly through the noise and stayed there
  (nearest-neighbour distances of random points, not of the FCC rows), where the
  discriminators' per-atom gradients average out over the noise; from the per-atom start
  it leaves that plateau (the measurements: benchmarks/RESULTS.md).
- ``learning_rate`` (config; the paper's 5e-5 by default) is Adam's rate in :func:`train`.
- **Alloys**: each training structure is translated by one of the 64 translations
  ``(i, j, k) / 4`` of the 4 x 4 x 4 conventional FCC supercell (identity + the
  paper's 63 augmentations), drawn at random each time a structure is used.

The whole model (generator + both discriminators) is one ``nn.Module`` with
``PyTorchModelHubMixin``: ``config.json`` holds the constructor arguments (composition,
lattice, widths, lambda) and ``model.safetensors`` the weights, so
``CryinGAN.from_pretrained("dismai/cryingan-alloy-300k-narrow")`` rebuilds it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from itertools import groupby
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from dismai_data.errors import StructureError

N_NEIGHBORS = 6
GP_WEIGHT = 10.0  # mu of the paper
LEARNING_RATE = 5e-5
BATCH_SIZE = 32
GENERATOR_EVERY = 5


def species_blocks(species: Sequence[str]) -> list[tuple[str, int]]:
    """``[(symbol, count), ...]`` of a species list that is already in contiguous blocks."""
    return [(s, len(list(g))) for s, g in groupby(species)]


def block_order(species: Sequence[str], order: Sequence[str]) -> np.ndarray:
    """Permutation putting ``species`` into the block order ``order`` (stable within a block)."""
    rank = {s: i for i, s in enumerate(order)}
    return np.array(sorted(range(len(species)), key=lambda i: (rank[species[i]], i)), dtype=np.int64)


def _pair_r2(frac_i: torch.Tensor, frac_j: torch.Tensor, lattice: torch.Tensor) -> torch.Tensor:
    """Squared minimum-image distances (rounded fractional difference) between ``frac_i``
    (..., 3) and ``frac_j`` (broadcastable), in Å^2."""
    d = frac_j - frac_i
    d = d - torch.round(d)
    cart = d @ lattice
    return (cart * cart).sum(-1)


def neighbor_distances_reference(frac: torch.Tensor, lattice: torch.Tensor, k: int = N_NEIGHBORS) -> torch.Tensor:
    """The straightforward form of :func:`neighbor_distances` (all pairs with autograd
    through the full N x N matrix); kept to prove the fast version against."""
    d = frac[:, :, None, :] - frac[:, None, :, :]
    d = d - torch.round(d)
    b, n = frac.shape[:2]
    cart = (d.reshape(-1, 3) @ lattice).reshape(b, n, n, 3)
    r2 = (cart * cart).sum(-1)
    eye = torch.eye(n, dtype=torch.bool, device=frac.device)
    r2 = r2.masked_fill(eye, float("inf"))
    vals = torch.topk(r2, k, dim=-1, largest=False).values
    return torch.sqrt(vals + 1e-12)


def neighbor_indices(frac: torch.Tensor, lattice: torch.Tensor, k: int = N_NEIGHBORS,
                     chunk: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) of the ``k`` smallest squared minimum-image distances of each atom
    (self excluded), each (B, N, k), ascending. No autograd; ``chunk`` structures at a time
    with in-place arithmetic, so the (chunk, N, N, 3) work array stays in cache."""
    b, n = frac.shape[:2]
    vals = torch.empty(b, n, k, dtype=frac.dtype, device=frac.device)
    idx = torch.empty(b, n, k, dtype=torch.int64, device=frac.device)
    with torch.no_grad():
        f = frac.detach()
        for s in range(0, b, chunk):
            fc = f[s:s + chunk]
            d = fc[:, None, :, :] - fc[:, :, None, :]  # d[b, i, j] = f_j - f_i
            d -= torch.round(d)
            cart = d @ lattice
            r2 = cart.square_().sum(-1)
            r2.diagonal(dim1=1, dim2=2).fill_(float("inf"))
            torch.topk(r2, k, dim=-1, largest=False, sorted=True, out=(vals[s:s + chunk], idx[s:s + chunk]))
    return vals, idx


def neighbor_distances(frac: torch.Tensor, lattice: torch.Tensor, k: int = N_NEIGHBORS) -> torch.Tensor:
    """Distances (Å) from each atom to its ``k`` nearest neighbours, minimum image.

    ``frac``: (B, N, 3) fractional coordinates; ``lattice``: (3, 3), rows are vectors.
    Returns (B, N, k), sorted ascending. Differentiable in ``frac``. One image per pair
    (minimum image on the fractional difference): exact while the k neighbours lie within
    half the cell's narrowest width (true for the 256-264-atom benchmark cells).

    Same function as :func:`neighbor_distances_reference` (tested), computed faster: the
    neighbours are found without autograd (:func:`neighbor_indices`); when ``frac``
    requires grad, the distances of the B x N x k selected pairs are recomputed from the
    coordinates with autograd, which is the same value and the same gradient (top-k passes
    gradient only to the selected entries) without an N x N backward.
    """
    vals, idx = neighbor_indices(frac, lattice, k)
    if not (torch.is_grad_enabled() and frac.requires_grad):
        return torch.sqrt(vals + 1e-12)
    b, n = frac.shape[:2]
    fj = torch.gather(frac, 1, idx.reshape(b, n * k, 1).expand(b, n * k, 3)).reshape(b, n, k, 3)
    r2 = _pair_r2(frac[:, :, None, :], fj, lattice)
    return torch.sqrt(r2 + 1e-12)


class _Generator(nn.Module):
    """Linear noise -> (N, c0); per-atom 1 x 3 transposed convolution (c0 -> 3 x c1) and 1 x 1
    transposed convolutions (c1 -> c2 -> c3 -> 1), written as the equivalent ``nn.Linear``
    layers on the channel axis (same function, several times faster on CPU)."""

    def __init__(self, latent_dim: int, n_atoms: int, channels: Sequence[int]):
        super().__init__()
        c0, c1, c2, c3 = channels
        self.n_atoms, self.c0, self.c1 = n_atoms, c0, c1
        self.fc = nn.Sequential(nn.Linear(latent_dim, c0 * n_atoms), nn.ReLU(True))
        self.up = nn.Linear(c0, 3 * c1)
        self.bn1 = nn.BatchNorm1d(c1)
        self.l2, self.bn2 = nn.Linear(c1, c2), nn.BatchNorm1d(c2)
        self.l3, self.bn3 = nn.Linear(c2, c3), nn.BatchNorm1d(c3)
        self.out = nn.Linear(c3, 1)

    @torch.no_grad()
    def init_per_atom(self, std: float, z_scale: float = 0.1) -> None:
        """Start with each atom's own position: the per-atom biases of the first layer drawn
        from N(0, std) and its noise weights scaled by ``z_scale``, so atoms differ by their
        biases rather than by the noise (see :class:`CryinGAN`, ``atom_init``)."""
        lin = self.fc[0]
        lin.weight.mul_(z_scale)
        nn.init.normal_(lin.bias, 0.0, std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        h = self.fc(z).view(b * self.n_atoms, self.c0)
        h = self.up(h).view(b * self.n_atoms * 3, self.c1)  # (atom, xyz) rows, channels last
        h = torch.relu(self.bn1(h))
        h = torch.relu(self.bn2(self.l2(h)))
        h = torch.relu(self.bn3(self.l3(h)))
        return torch.sigmoid(self.out(h)).view(b, self.n_atoms, 3)


class _Discriminator(nn.Module):
    """Per-atom 1 x width convolution and 1 x 1 convolutions (as ``nn.Linear`` on each
    atom's row: the same function), average pooling per species block, MLP to one score.

    The block averages are one matrix product with a (blocks x N) 0/1 membership matrix,
    divided by the block sizes (the same average as a mean over each block; its double
    backward for the gradient penalty is one matrix product instead of slice copies)."""

    def __init__(self, width: int, blocks: Sequence[int], channels: Sequence[int], hidden: Sequence[int],
                 frequencies: int = 0):
        super().__init__()
        c1, c2, c3 = channels
        self.blocks = list(blocks)
        self.frequencies = int(frequencies)
        if self.frequencies > 0:  # periodic features of each coordinate (no parameters; rebuilt from the config)
            k = 2 * math.pi * torch.arange(1, self.frequencies + 1, dtype=torch.float32)
            self.register_buffer("wavenumbers", k, persistent=False)
            width = 2 * self.frequencies * width
        self.conv = nn.Sequential(
            nn.Linear(width, c1), nn.LeakyReLU(0.2),
            nn.Linear(c1, c2), nn.LeakyReLU(0.2),
            nn.Linear(c2, c3), nn.LeakyReLU(0.2),
        )
        h1, h2 = hidden
        self.head = nn.Sequential(nn.Linear(c3 * len(self.blocks), h1), nn.LeakyReLU(0.2),
                                  nn.Linear(h1, h2), nn.LeakyReLU(0.2), nn.Linear(h2, 1))
        member = torch.zeros(len(self.blocks), sum(self.blocks))  # 0/1: exact in every dtype
        start = 0
        for i, n in enumerate(self.blocks):
            member[i, start:start + n] = 1.0
            start += n
        # not in the checkpoint (rebuilt from blocks)
        self.register_buffer("member", member, persistent=False)
        self.register_buffer("counts", torch.tensor([[float(n)] for n in self.blocks]), persistent=False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as it is (the paper), or ``sin, cos(2 pi k x)`` for k = 1..frequencies of each
        column (``frequencies > 0``): periodic in each fractional coordinate, so x and x + 1
        look the same and a per-atom feature can resolve lattice planes 1/k apart."""
        if self.frequencies <= 0:
            return x
        phase = x[..., None] * self.wavenumbers  # (B, N, width, K)
        return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1).flatten(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, width)
        h = self.conv(self.embed(x))  # (B, N, C)
        pooled = torch.matmul(self.member, h) / self.counts  # (B, blocks, C): block sums / counts
        return self.head(pooled.flatten(1)).squeeze(-1)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The straightforward form (a mean over each block slice); kept to prove ``forward``."""
        h = self.conv(self.embed(x))
        pooled = [part.mean(dim=1) for part in torch.split(h, self.blocks, dim=1)]
        return self.head(torch.cat(pooled, dim=-1)).squeeze(-1)


class CryinGAN(nn.Module, PyTorchModelHubMixin, library_name="dismai-data", license="mit",
               tags=["dismai-data", "materials", "crystal-generation", "gan", "cryingan"],
               repo_url="https://doi.org/10.1039/D4DD00100A"):
    """CryinGAN for one fixed composition (``blocks``) and lattice."""

    def __init__(self, blocks: list, lattice: list, latent_dim: int = 64,
                 gen_channels: list | None = None, disc_channels: list | None = None,
                 disc_hidden: list | None = None, lam: float = 0.05, n_neighbors: int = N_NEIGHBORS,
                 translations: int = 0, coord_frequencies: int = 0, atom_init: float = 0.0,
                 learning_rate: float = LEARNING_RATE, dataset: str = "",
                 dataset_config: str | None = None,
                 dataset_revision: str | None = None, task: str = "", baseline: str = "cryingan"):
        super().__init__()
        if baseline != "cryingan":
            raise ValueError(f"config.json says baseline={baseline!r}, not 'cryingan'")
        self.baseline = baseline
        self.blocks = [(str(s), int(n)) for s, n in blocks]
        if not self.blocks or any(n <= 0 for _, n in self.blocks):
            raise ValueError(f"blocks must be non-empty (symbol, count) pairs, got {blocks!r}")
        self.lattice_list = [[float(v) for v in row] for row in lattice]
        lat = np.asarray(self.lattice_list, dtype=np.float64)
        if lat.shape != (3, 3) or not np.all(np.isfinite(lat)) or abs(np.linalg.det(lat)) < 1e-6:
            raise ValueError(f"lattice must be a non-singular 3 x 3 matrix, got {lattice!r}")
        self.register_buffer("lattice", torch.tensor(lat, dtype=torch.float32), persistent=True)
        self.n_atoms = sum(n for _, n in self.blocks)
        self.latent_dim = int(latent_dim)
        self.lam = float(lam)
        self.n_neighbors = int(n_neighbors)
        self.translations = int(translations)
        self.coord_frequencies = int(coord_frequencies)
        self.atom_init = float(atom_init)
        self.learning_rate = float(learning_rate)
        self.dataset, self.dataset_config, self.dataset_revision, self.task = (
            dataset, dataset_config, dataset_revision, task)
        gen_channels = list(gen_channels or [128, 256, 512, 256])
        disc_channels = list(disc_channels or [512, 512, 256])
        disc_hidden = list(disc_hidden or [1000, 200])
        counts = [n for _, n in self.blocks]
        self.generator = _Generator(self.latent_dim, self.n_atoms, gen_channels)
        if self.atom_init > 0:
            self.generator.init_per_atom(self.atom_init)
        self.d_coord = _Discriminator(3, counts, disc_channels, disc_hidden, frequencies=self.coord_frequencies)
        self.d_bond = _Discriminator(self.n_neighbors, counts, disc_channels, disc_hidden)

    @property
    def species(self) -> list[str]:
        return [s for s, n in self.blocks for _ in range(n)]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def bonds(self, frac: torch.Tensor) -> torch.Tensor:
        return neighbor_distances(frac, self.lattice, self.n_neighbors)

    def noise(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return torch.randn(n, self.latent_dim, generator=g)

    @torch.no_grad()
    def sample_frac(self, n: int, seed: int = 0, batch: int = 250) -> np.ndarray:
        """(n, N, 3) float64 fractional coordinates; the same seed gives the same output."""
        was = self.training
        self.eval()
        z = self.noise(n, seed)
        out = [self.generator(z[i:i + batch]).double().numpy() for i in range(0, n, batch)]
        self.train(was)
        return np.concatenate(out) if out else np.zeros((0, self.n_atoms, 3))

    def generate(self, n: int, seed: int = 0, id_prefix: str | None = None) -> list[dict]:
        """``n`` structure rows (``dismai_data.structure.make_row``, no spglib: P1 cells)."""
        return self.rows_from_frac(self.sample_frac(n, seed), id_prefix or f"cryingan-s{seed}")

    def rows_from_frac(self, frac: np.ndarray, prefix: str = "cryingan") -> list[dict]:
        """Structure rows of (M, N, 3) generator coordinates, as :meth:`generate` writes them:
        the species blocks, the coordinates wrapped into [0, 1) and the model's lattice (the
        training rows' cell, so an on-lattice output lies on the reference sites as is)."""
        from dismai_data.structure import make_row

        lat = np.asarray(self.lattice_list)
        species = self.species
        return [make_row(species, np.asarray(f, dtype=np.float64) % 1.0, lat, f"{prefix}-{i:05d}", symmetry=False)
                for i, f in enumerate(frac)]


MIN_VACUUM = 5.0  # Å: the least gap along the vacuum axis accepted by training_tensor(vacuum_axis=...)


def training_tensor(rows: Sequence[dict], blocks: Sequence[tuple[str, int]] | None = None,
                    source: str = "training data", vacuum_axis: int | None = None,
                    ) -> tuple[torch.Tensor, list[tuple[str, int]], np.ndarray]:
    """(M, N, 3) float32 fractional coordinates with atoms sorted into species blocks;
    checks that every row shares one composition and lattice (errors name the row).

    ``vacuum_axis`` (slabs, e.g. 2 for the interface task, whose cells differ only in the
    length of the c vector through the vacuum because the interface thickness varies):
    rows may differ in the length of that lattice vector (same direction, the other two
    vectors identical); every row is expressed in the cell with the longest such vector,
    keeping its Cartesian positions (the slab is first made contiguous across the largest
    gap along the axis, which must be at least ``MIN_VACUUM`` Å), so only the vacuum
    grows. Returns that common lattice."""
    if not rows:
        raise StructureError("holds no rows", source=source, field="rows")
    first = rows[0]
    order = sorted(set(first["species"]), key=lambda s: first["species"].index(s)) if blocks is None else \
        [s for s, _ in blocks]
    if blocks is None:
        perm = block_order(first["species"], order)
        blocks = species_blocks([first["species"][i] for i in perm])
    want = sorted((s, n) for s, n in blocks)
    lats = [np.asarray(row["lattice"], dtype=np.float64) for row in rows]
    lat0 = lats[0]
    keep = [a for a in range(3) if a != vacuum_axis]
    if vacuum_axis is not None:
        if vacuum_axis not in (0, 1, 2):
            raise ValueError(f"vacuum_axis must be 0, 1 or 2, got {vacuum_axis!r}")
        lat0 = lats[int(np.argmax([np.linalg.norm(lt[vacuum_axis]) for lt in lats]))]
    out = np.empty((len(rows), sum(n for _, n in blocks), 3), dtype=np.float32)
    for i, row in enumerate(rows):
        sp = list(row["species"])
        comp = sorted(species_blocks(sorted(sp)))
        if comp != want:
            raise StructureError(f"composition {comp} differs from the first row's {want}; CryinGAN needs one "
                                 "fixed composition", source=source, row=str(row.get("id")), index=i,
                                 field="species")
        lat = lats[i]
        if not np.allclose(lat[keep], lat0[keep], atol=1e-4):
            what = "lattice differs from the first row's" if vacuum_axis is None else \
                f"lattice vectors other than the vacuum axis {vacuum_axis} differ from the other rows'"
            raise StructureError(f"{what}; CryinGAN needs one fixed lattice", source=source,
                                 row=str(row.get("id")), index=i, field="lattice")
        perm = block_order(sp, [s for s, _ in blocks])
        frac = np.asarray(row["frac_coords"], dtype=np.float64)[perm]
        if vacuum_axis is not None:
            v, v0 = lat[vacuum_axis], lat0[vacuum_axis]
            ratio = np.linalg.norm(v) / np.linalg.norm(v0)
            if np.linalg.norm(np.cross(v / np.linalg.norm(v), v0 / np.linalg.norm(v0))) > 1e-6:
                raise StructureError(f"lattice vector {vacuum_axis} is not parallel to the other rows'",
                                     source=source, row=str(row.get("id")), index=i, field="lattice")
            f = frac[:, vacuum_axis] % 1.0
            srt = np.sort(f)
            gaps = np.append(np.diff(srt), srt[0] + 1.0 - srt[-1])  # gap after each sorted atom (periodic)
            g = int(np.argmax(gaps))
            vacuum = gaps[g] * np.linalg.norm(v)
            if vacuum < MIN_VACUUM:
                raise StructureError(f"largest gap along the vacuum axis is {vacuum:.2f} Å < {MIN_VACUUM} Å: not a "
                                     "slab with vacuum", source=source, row=str(row.get("id")), index=i,
                                     field="frac_coords")
            lo = srt[(g + 1) % len(srt)]  # the slab starts after the largest gap
            frac[:, vacuum_axis] = (lo + (f - lo) % 1.0) * ratio  # contiguous slab, same Cartesian positions
        out[i] = frac % 1.0
    return torch.from_numpy(out), [(s, int(n)) for s, n in blocks], lat0


def lattice_translations(frac: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """Each structure of ``frac`` (B, N, 3) shifted by a random ``(i, j, k) / n`` (the
    augmentation of :func:`train`), wrapped into [0, 1)."""
    shift = torch.randint(0, n, (frac.shape[0], 1, 3), generator=gen).float() / n
    return (frac + shift) % 1.0


def _wasserstein(disc: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``mean D(fake) - mean D(real)`` with one discriminator pass over both (the
    discriminators have no batch statistics, so each row's score is the same as alone)."""
    out = disc(torch.cat([fake, real]))
    return out[:fake.shape[0]].mean() - out[fake.shape[0]:].mean()


def _gradient_penalty(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    eps = torch.rand(real.shape[0], 1, 1, generator=gen)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = disc(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _critic_step(model: CryinGAN, opt_d, real: torch.Tensor, real_bonds: torch.Tensor,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One update of both discriminators on a batch (WGAN-GP: ``L_coord + lambda L_bond``);
    returns (L_coord, L_bond)."""
    z = torch.randn(real.shape[0], model.latent_dim, generator=gen)
    with torch.no_grad():
        fake = model.generator(z)
    fake_bonds = model.bonds(fake)
    loss_c = _wasserstein(model.d_coord, fake, real) + GP_WEIGHT * _gradient_penalty(model.d_coord, real, fake, gen)
    loss_d = loss_c
    loss_b = torch.zeros(())
    if model.lam > 0:
        loss_b = _wasserstein(model.d_bond, fake_bonds, real_bonds) + GP_WEIGHT * _gradient_penalty(
            model.d_bond, real_bonds, fake_bonds, gen)
        loss_d = loss_c + model.lam * loss_b
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    return loss_c, loss_b


def _generator_step(model: CryinGAN, opt_g, b: int, gen: torch.Generator) -> torch.Tensor:
    """One generator update on ``b`` noise draws: ``-(D_coord(G(z)) + lambda D_bond(G(z)))``."""
    z = torch.randn(b, model.latent_dim, generator=gen)
    fake = model.generator(z)
    loss_g = -model.d_coord(fake).mean()
    if model.lam > 0:
        loss_g = loss_g - model.lam * model.d_bond(model.bonds(fake)).mean()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_g


def train(model: CryinGAN, data: torch.Tensor, *, epochs: int | None = None, max_seconds: float | None = None,
          batch_size: int = BATCH_SIZE, lr: float | None = None, generator_every: int = GENERATOR_EVERY,
          seed: int = 0, translations: int | None = None, log: Callable[[dict], None] | None = None,
          max_batches: int | None = None) -> dict:
    """WGAN-GP training of ``model`` on ``data`` (M, N, 3) until ``epochs`` passes,
    ``max_batches`` batches or ``max_seconds`` wall time (checked after each batch),
    whichever comes first. ``translations``: n per axis of the lattice-translation
    augmentation (4 for the alloys: 64 translations); default ``model.translations``.
    ``lr``: Adam's learning rate, default ``model.learning_rate`` (the paper's 5e-5 unless
    the checkpoint's config says otherwise).
    Returns a summary (epochs, batches, generator steps, seconds, last losses)."""
    if epochs is None and max_seconds is None and max_batches is None:
        raise ValueError("give epochs, max_batches or max_seconds")
    if data.ndim != 3 or data.shape[1:] != (model.n_atoms, 3):
        raise ValueError(f"training data has shape {tuple(data.shape)}, expected (M, {model.n_atoms}, 3)")
    lr = model.learning_rate if lr is None else float(lr)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    nt = model.translations if translations is None else int(translations)
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(list(model.d_coord.parameters()) + list(model.d_bond.parameters()), lr=lr,
                             betas=(0.5, 0.999))
    t0 = time.perf_counter()
    with torch.no_grad():  # neighbour distances of the training set (unchanged by the lattice translations)
        data_bonds = torch.cat([model.bonds(data[i:i + 64]) for i in range(0, data.shape[0], 64)])
    model.train()
    m = data.shape[0]
    epoch = batches = g_steps = 0
    last: dict = {}
    history: list[dict] = []
    done = False
    while not done:
        perm = torch.randperm(m, generator=gen)
        for start in range(0, m, batch_size):
            idx = perm[start:start + batch_size]
            real, real_bonds = data[idx], data_bonds[idx]
            if nt > 1:
                real = lattice_translations(real, nt, gen)
            loss_c, loss_b = _critic_step(model, opt_d, real, real_bonds, gen)
            batches += 1
            if batches % generator_every == 0:
                loss_g = _generator_step(model, opt_g, real.shape[0], gen)
                g_steps += 1
                last = {"loss_d_coord": float(loss_c.detach()), "loss_d_bond": float(loss_b.detach()),
                        "loss_g": float(loss_g.detach())}
            elapsed = time.perf_counter() - t0
            if (max_seconds is not None and elapsed >= max_seconds) or \
                    (max_batches is not None and batches >= max_batches):
                done = True
                break
        else:
            epoch += 1
            rec = {"epoch": epoch, "batches": batches, "generator_steps": g_steps,
                   "seconds": round(time.perf_counter() - t0, 1), **{k: round(v, 5) for k, v in last.items()}}
            history.append(rec)
            if log:
                log(rec)
            if epochs is not None and epoch >= epochs:
                done = True
    model.eval()
    return {"epochs_completed": epoch, "batches": batches, "generator_steps": g_steps,
            "partial_epoch_batches": batches - epoch * math.ceil(m / batch_size),
            "seconds": round(time.perf_counter() - t0, 1), "training_structures": m, "batch_size": batch_size,
            "learning_rate": lr, "generator_every": generator_every, "gradient_penalty": GP_WEIGHT,
            "translations_per_axis": nt, "seed": seed, "last_losses": last, "history": history}


def save_checkpoint(model: CryinGAN, folder: str | Path, summary: dict | None = None) -> Path:
    """``config.json`` + ``model.safetensors`` (+ ``training.json``) in ``folder``."""
    folder = Path(folder)
    model.save_pretrained(folder)
    (folder / "README.md").unlink(missing_ok=True)  # the card is written at publishing time, with scores
    if summary is not None:
        (folder / "training.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return folder
