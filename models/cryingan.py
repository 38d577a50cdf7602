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


def neighbor_distances(frac: torch.Tensor, lattice: torch.Tensor, k: int = N_NEIGHBORS) -> torch.Tensor:
    """Distances (Å) from each atom to its ``k`` nearest neighbours, minimum image.

    ``frac``: (B, N, 3) fractional coordinates; ``lattice``: (3, 3), rows are vectors.
    Returns (B, N, k), sorted ascending. Differentiable in ``frac``. One image per pair
    (minimum image on the fractional difference): exact while the k neighbours lie within
    half the cell's narrowest width (true for the 256-264-atom benchmark cells).
    """
    d = frac[:, :, None, :] - frac[:, None, :, :]
    d = d - torch.round(d)
    b, n = frac.shape[:2]
    cart = (d.reshape(-1, 3) @ lattice).reshape(b, n, n, 3)
    r2 = (cart * cart).sum(-1)
    n = frac.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=frac.device)
    r2 = r2.masked_fill(eye, float("inf"))
    vals = torch.topk(r2, k, dim=-1, largest=False).values
    return torch.sqrt(vals + 1e-12)


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
    atom's row: the same function), average pooling per species block, MLP to one score."""

    def __init__(self, width: int, blocks: Sequence[int], channels: Sequence[int], hidden: Sequence[int]):
        super().__init__()
        c1, c2, c3 = channels
        self.blocks = list(blocks)
        self.conv = nn.Sequential(
            nn.Linear(width, c1), nn.LeakyReLU(0.2, True),
            nn.Linear(c1, c2), nn.LeakyReLU(0.2, True),
            nn.Linear(c2, c3), nn.LeakyReLU(0.2, True),
        )
        h1, h2 = hidden
        self.head = nn.Sequential(nn.Linear(c3 * len(self.blocks), h1), nn.LeakyReLU(0.2, True),
                                  nn.Linear(h1, h2), nn.LeakyReLU(0.2, True), nn.Linear(h2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, width)
        h = self.conv(x)  # (B, N, C)
        pooled = [part.mean(dim=1) for part in torch.split(h, self.blocks, dim=1)]
        return self.head(torch.cat(pooled, dim=-1)).squeeze(-1)


class CryinGAN(nn.Module, PyTorchModelHubMixin, library_name="dismai-data", license="mit",
               tags=["dismai-data", "materials", "crystal-generation", "gan", "cryingan"],
               repo_url="https://doi.org/10.1039/D4DD00100A"):
    """CryinGAN for one fixed composition (``blocks``) and lattice."""

    def __init__(self, blocks: list, lattice: list, latent_dim: int = 64,
                 gen_channels: list | None = None, disc_channels: list | None = None,
                 disc_hidden: list | None = None, lam: float = 0.05, n_neighbors: int = N_NEIGHBORS,
                 translations: int = 0, dataset: str = "", dataset_config: str | None = None,
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
        self.dataset, self.dataset_config, self.dataset_revision, self.task = (
            dataset, dataset_config, dataset_revision, task)
        gen_channels = list(gen_channels or [128, 256, 512, 256])
        disc_channels = list(disc_channels or [512, 512, 256])
        disc_hidden = list(disc_hidden or [1000, 200])
        counts = [n for _, n in self.blocks]
        self.generator = _Generator(self.latent_dim, self.n_atoms, gen_channels)
        self.d_coord = _Discriminator(3, counts, disc_channels, disc_hidden)
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
        from dismai_data.structure import make_row

        frac = self.sample_frac(n, seed)
        prefix = id_prefix or f"cryingan-s{seed}"
        lat = np.asarray(self.lattice_list)
        species = self.species
        return [make_row(species, frac[i] % 1.0, lat, f"{prefix}-{i:05d}", symmetry=False) for i in range(n)]


def training_tensor(rows: Sequence[dict], blocks: Sequence[tuple[str, int]] | None = None,
                    source: str = "training data") -> tuple[torch.Tensor, list[tuple[str, int]], np.ndarray]:
    """(M, N, 3) float32 fractional coordinates with atoms sorted into species blocks;
    checks that every row shares one composition and lattice (errors name the row)."""
    if not rows:
        raise StructureError("holds no rows", source=source, field="rows")
    first = rows[0]
    order = sorted(set(first["species"]), key=lambda s: first["species"].index(s)) if blocks is None else \
        [s for s, _ in blocks]
    if blocks is None:
        perm = block_order(first["species"], order)
        blocks = species_blocks([first["species"][i] for i in perm])
    want = sorted((s, n) for s, n in blocks)
    lat0 = np.asarray(first["lattice"], dtype=np.float64)
    out = np.empty((len(rows), sum(n for _, n in blocks), 3), dtype=np.float32)
    for i, row in enumerate(rows):
        sp = list(row["species"])
        comp = sorted(species_blocks(sorted(sp)))
        if comp != want:
            raise StructureError(f"composition {comp} differs from the first row's {want}; CryinGAN needs one "
                                 "fixed composition", source=source, row=str(row.get("id")), index=i,
                                 field="species")
        if not np.allclose(np.asarray(row["lattice"], dtype=np.float64), lat0, atol=1e-4):
            raise StructureError("lattice differs from the first row's; CryinGAN needs one fixed lattice",
                                 source=source, row=str(row.get("id")), index=i, field="lattice")
        perm = block_order(sp, [s for s, _ in blocks])
        out[i] = np.asarray(row["frac_coords"], dtype=np.float64)[perm] % 1.0
    return torch.from_numpy(out), [(s, int(n)) for s, n in blocks], lat0


def _gradient_penalty(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    eps = torch.rand(real.shape[0], 1, 1, generator=gen)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = disc(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def train(model: CryinGAN, data: torch.Tensor, *, epochs: int | None = None, max_seconds: float | None = None,
          batch_size: int = BATCH_SIZE, lr: float = LEARNING_RATE, generator_every: int = GENERATOR_EVERY,
          seed: int = 0, translations: int | None = None, log: Callable[[dict], None] | None = None,
          max_batches: int | None = None) -> dict:
    """WGAN-GP training of ``model`` on ``data`` (M, N, 3) until ``epochs`` passes,
    ``max_batches`` batches or ``max_seconds`` wall time (checked after each batch),
    whichever comes first. ``translations``: n per axis of the lattice-translation
    augmentation (4 for the alloys: 64 translations); default ``model.translations``.
    Returns a summary (epochs, batches, generator steps, seconds, last losses)."""
    if epochs is None and max_seconds is None and max_batches is None:
        raise ValueError("give epochs, max_batches or max_seconds")
    if data.ndim != 3 or data.shape[1:] != (model.n_atoms, 3):
        raise ValueError(f"training data has shape {tuple(data.shape)}, expected (M, {model.n_atoms}, 3)")
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
                shift = torch.randint(0, nt, (real.shape[0], 1, 3), generator=gen).float() / nt
                real = (real + shift) % 1.0
            b = real.shape[0]
            z = torch.randn(b, model.latent_dim, generator=gen)
            with torch.no_grad():
                fake = model.generator(z)
            fake_bonds = model.bonds(fake)
            loss_c = (model.d_coord(fake).mean() - model.d_coord(real).mean()
                      + GP_WEIGHT * _gradient_penalty(model.d_coord, real, fake, gen))
            loss_d = loss_c
            loss_b = torch.zeros(())
            if model.lam > 0:
                loss_b = (model.d_bond(fake_bonds).mean() - model.d_bond(real_bonds).mean()
                          + GP_WEIGHT * _gradient_penalty(model.d_bond, real_bonds, fake_bonds, gen))
                loss_d = loss_c + model.lam * loss_b
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            batches += 1
            if batches % generator_every == 0:
                z = torch.randn(b, model.latent_dim, generator=gen)
                fake = model.generator(z)
                loss_g = -model.d_coord(fake).mean()
                if model.lam > 0:
                    loss_g = loss_g - model.lam * model.d_bond(model.bonds(fake)).mean()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                g_steps += 1
                last = {"loss_d_coord": float(loss_c.detach()), "loss_d_bond": float(loss_b.detach()),
                        "loss_g": float(loss_g.detach())}
            elapsed = time.perf_counter() - t0
            if (max_seconds is not None and elapsed >= max_seconds) or (max_batches is not None and batches >= max_batches):
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
