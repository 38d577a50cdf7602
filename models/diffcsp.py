"""DiffCSP (Jiao et al., NeurIPS 2023, arXiv:2309.04475): crystal-structure prediction by
joint diffusion of the lattice and the fractional coordinates at a fixed composition.

Built on ``chemeleon-dng`` (pinned; MIT), the maintained PyPI implementation of the
same architecture: its ``CSPNet`` is the denoiser (periodic E(3)-invariant GNN; edge
features are the lattice inner products ``L L^T`` and a sinusoidal embedding of the
fractional differences, coordinate output per atom, lattice output ``L' = M L``), its
``DSM`` holds the wrapped-normal score schedule of the coordinates (log-spaced sigma
from 0.005 to sigma_T: DiffCSP's 0.5, or the Dismai sets' ``SIGMA_END``; the Monte-Carlo
``sigma_norm``) and its cosine beta schedule feeds the
DDPM of the lattice. What is written here, from the paper and DiffCSP's
``CSPDiffusion``:

- the loss: ``|eps_L - eps_hat_L|^2 + |s(x) - s_hat(x)|^2`` with ``s`` the normalised score
  of the wrapped normal (chemeleon's ``d_log_p_wrapped_normal``), t uniform in 1..T;
- the sampler: DiffCSP's predictor-corrector loop (per step: a Langevin corrector on the
  coordinates with ``step_lr``, then the ancestral predictor on both), T = 1000;
- edges: all pairs in a cell (DiffCSP's ``fc``), or each atom's ``knn`` nearest neighbours
  within ``cutoff`` Å under the minimum-image convention (DiffCSP's ``knn`` style: 20
  neighbours, 7 Å), recomputed from the noisy structure at every call. Dismai-Bench's
  configs keep ``fc`` even for the 256-atom cells; the CPU-trained checkpoints here use
  ``knn`` for them (fc, self-pairs included, is ~21x the edges of knn 12), which their cards state;
- ``fixed_lattice`` (the Dismai sets, whose rows share one cell): the lattice is not
  diffused; the model denoises coordinates only, in that cell. With ``align_origin`` (the
  alloys, whose rows sit on one FCC lattice with a site at the origin) each generated
  structure is translated so its atom nearest the cell origin sits on it: the model is
  translation-invariant, so its samples come in a random frame, and this is the
  translation the authors' DiffCSP clean-up (``remove_atoms_not_on_lattice_diffcsp.py``)
  applies before snapping to the lattice;
- training (Adam 1e-3, ReduceLROnPlateau 0.6 / 30 epochs / 1e-4, gradient values clipped
  at 0.5, as DiffCSP's configs) checkpointed with its optimiser and RNG state, so a
  stopped run resumes where it was.

Reconstruction tasks (Perov-5, JARVIS Supercon-3D): :meth:`DiffCSP.generate` predicts
one structure per target-split row from its composition (the target's id); each seed is
one sample, so ``k`` seeds give DiffCSP's best-of-k match rate. Fixed-composition tasks
(alloys, a-Si, interface): ``n`` structures of the training composition and cell.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from dismai_data.errors import StructureError
from dismai_data.raw import sha256_file

from .data import dataset_name

MAX_Z = 100  # DiffCSP's MAX_ATOMIC_NUM: atom types embed as Z - 1
STEP_LR = {"perov-5": 5e-7, "carbon-24": 5e-6}  # DiffCSP scripts/eval_utils.py recommand_step_lr["csp"]
DEFAULT_STEP_LR = 1e-5  # mp_20 / mpts_52 (and every other dataset here)
#: sigma_T of the coordinates' noise schedule (fractional units; DiffCSP's default 0.5). Dismai-Bench
#: (Yong et al. 2024, section 4.2.2) sets 0.1 for the interface and the alloys and 0.05 for a-Si: their
#: structures sit near a lattice or a dense packing, and the noise that matters is below an Angstrom.
SIGMA_END = {"alloy": 0.1, "interface": 0.1, "a-si": 0.05}
DEFAULT_SIGMA_END = 0.5
ALIGNED_DATASETS = ("alloy",)  # rows on one lattice with a site at the origin: samples get align_origin
CHECKPOINT_STATE = "training_state.pt"  # optimiser, scheduler, RNG, epoch: what --resume reads


def knn_edges(frac: torch.Tensor, lattices: torch.Tensor, num_atoms: torch.Tensor, k: int,
              cutoff: float) -> torch.Tensor:
    """(2, E) edges ``(center, neighbour)``: for each atom its ``k`` nearest other atoms of
    the same cell within ``cutoff`` Å, minimum-image distances (the fractional difference
    wrapped into [-0.5, 0.5)). Atoms are grouped by cell size so the work is dense."""
    starts = torch.cumsum(num_atoms, 0) - num_atoms
    src, dst = [], []
    for n in torch.unique(num_atoms).tolist():
        if n < 2:
            continue
        cells = torch.nonzero(num_atoms == n).flatten()
        idx = starts[cells, None] + torch.arange(n, device=frac.device)  # (G, n) global atom index
        x = frac[idx]  # (G, n, 3)
        d = x[:, None, :, :] - x[:, :, None, :]  # [g, i, j] = x_j - x_i
        d = d - torch.round(d)
        cart = torch.einsum("gijk,gkl->gijl", d, lattices[cells])
        dist = torch.linalg.norm(cart, dim=-1)
        dist.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        dist = torch.where(dist <= cutoff, dist, torch.full_like(dist, float("inf")))
        kk = min(k, n - 1)
        val, nb = torch.topk(dist, kk, dim=-1, largest=False)  # (G, n, kk)
        keep = torch.isfinite(val)
        centre = idx[:, :, None].expand(-1, -1, kk)
        neigh = torch.gather(idx[:, None, :].expand(-1, n, -1), 2, nb)
        src.append(centre[keep])
        dst.append(neigh[keep])
    if not src:
        return torch.zeros(2, 0, dtype=torch.long, device=frac.device)
    return torch.stack([torch.cat(src), torch.cat(dst)])


def fc_edges(num_atoms: torch.Tensor) -> torch.Tensor:
    """(2, E) all ordered pairs ``(i, j)`` of atoms in the same cell, self-pairs included
    (CSPNet's ``fc`` edge style), grouped by cell size."""
    starts = torch.cumsum(num_atoms, 0) - num_atoms
    parts = []
    for n in torch.unique(num_atoms).tolist():
        cells = torch.nonzero(num_atoms == n).flatten()
        idx = starts[cells, None] + torch.arange(n, device=num_atoms.device)  # (G, n)
        parts.append(torch.stack([idx[:, :, None].expand(-1, n, n).reshape(-1),
                                  idx[:, None, :].expand(-1, n, n).reshape(-1)]))
    return torch.cat(parts, 1)


def _denoiser(hidden_dim: int, time_dim: int, num_layers: int, num_freqs: int) -> nn.Module:
    from chemeleon_dng.cspnet import CSPNet, CSPNetTask

    class _Net(CSPNet):
        """chemeleon's CSPNet with its edges given by the caller (``fc`` or ``knn``)."""

        edges: torch.Tensor | None = None

        def gen_edges(self, num_atoms, frac_coords):
            e = self.edges
            return e, (frac_coords[e[1]] - frac_coords[e[0]]) % 1.0

    return _Net(hidden_dim=hidden_dim, time_dim=time_dim, num_layers=num_layers, max_atoms=MAX_Z,
                act_fn="silu", dis_emb="sin", num_freqs=num_freqs, ln=True, ip=True, pred_atom_types=False,
                task=CSPNetTask.CSP)


class DiffCSP(nn.Module, PyTorchModelHubMixin, library_name="dismai-data", license="mit",
              tags=["dismai-data", "materials", "crystal-structure-prediction", "diffusion", "diffcsp"],
              repo_url="https://arxiv.org/abs/2309.04475"):
    """DiffCSP denoiser + schedules; config.json holds these arguments, model.safetensors
    the weights and the schedule buffers."""

    def __init__(self, hidden_dim: int = 512, time_dim: int = 256, num_layers: int = 6, num_freqs: int = 128,
                 timesteps: int = 1000, sigma_begin: float = 0.005, sigma_end: float = 0.5,
                 edge_style: str = "fc", knn: int = 20, cutoff: float = 7.0,
                 fixed_lattice: list | None = None, blocks: list | None = None, block_numbers: list | None = None,
                 step_lr: float = DEFAULT_STEP_LR, align_origin: bool = False,
                 dataset: str = "", dataset_config: str | None = None, dataset_revision: str | None = None,
                 task: str = "", target_split: str = "test", baseline: str = "diffcsp"):
        super().__init__()
        if baseline != "diffcsp":
            raise ValueError(f"config.json says baseline={baseline!r}, not 'diffcsp'")
        if edge_style not in ("fc", "knn"):
            raise ValueError(f"edge_style must be 'fc' or 'knn', got {edge_style!r}")
        if not ((fixed_lattice is None) == (blocks is None) == (block_numbers is None)):
            raise ValueError("fixed_lattice, blocks and block_numbers go together (a fixed-composition, "
                             "fixed-cell model)")
        self.baseline, self.hidden_dim, self.time_dim, self.num_layers = baseline, hidden_dim, time_dim, num_layers
        self.num_freqs, self.timesteps, self.edge_style, self.knn = num_freqs, int(timesteps), edge_style, knn
        self.cutoff, self.step_lr = float(cutoff), float(step_lr)
        if align_origin and fixed_lattice is None:
            raise ValueError("align_origin needs fixed_lattice (a fixed-cell model)")
        self.align_origin = bool(align_origin)
        self.sigma_begin, self.sigma_end = float(sigma_begin), float(sigma_end)
        self.blocks = None if blocks is None else [(str(s), int(n)) for s, n in blocks]
        self.block_numbers = None if block_numbers is None else [int(z) for z in block_numbers]
        self.fixed_lattice = None if fixed_lattice is None else [[float(v) for v in r] for r in fixed_lattice]
        self.dataset, self.dataset_config, self.dataset_revision = dataset, dataset_config, dataset_revision
        self.task, self.target_split = task or Path(dataset.rstrip("/")).name, target_split
        self.net = _denoiser(hidden_dim, time_dim, num_layers, num_freqs)
        self._schedules()

    def _schedules(self) -> None:
        """Buffers of both schedules (index t = 0..T, 0 = no noise). ``sigma_norm`` is a
        Monte-Carlo estimate; it is drawn from a fixed seed and saved with the weights."""
        from chemeleon_dng.diffusion.diffusion_scheduler import cosine_beta_schedule
        from chemeleon_dng.diffusion.models.dsm import DSM

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            dsm = DSM(num_timesteps=self.timesteps, sigma_begin=self.sigma_begin, sigma_end=self.sigma_end)
        betas = torch.cat([torch.zeros(1), cosine_beta_schedule(self.timesteps)]).double()
        alphas = 1.0 - betas
        acp = torch.cumprod(alphas, 0)
        post = torch.zeros_like(betas)
        post[1:] = betas[1:] * (1 - acp[:-1]) / (1 - acp[1:])
        for name, v in (("sigmas", dsm.sigmas), ("sigmas_norm", dsm.sigmas_norm), ("alphas", alphas),
                        ("alphas_cumprod", acp), ("posterior_std", post.sqrt())):
            self.register_buffer(name, v.float().clone(), persistent=True)

    # ---------------------------------------------------------------- structure <-> tensors
    @property
    def species(self) -> list[str]:
        return [s for s, n in (self.blocks or []) for _ in range(n)]

    @property
    def numbers(self) -> list[int]:
        return [z for z, (_, n) in zip(self.block_numbers or [], self.blocks or []) for _ in range(n)]

    def species_separation(self) -> float | None:
        """How far apart the denoiser's input keeps this model's species: the mean distance
        between their vectors after the first layer (the atom embedding through the embedding
        columns of ``atom_latent_embedding``) over their mean length. About 1.4 at random
        initialisation; near 0 once the denoiser has learned to ignore the species. None
        unless the model has a fixed composition of two or more species."""
        zs = sorted(set(self.block_numbers or []))
        if len(zs) < 2:
            return None
        emb = self.net.node_embedding.weight.detach()[torch.tensor(zs) - 1]  # the row of Z is Z - 1
        v = emb @ self.net.atom_latent_embedding.weight.detach()[:, :emb.shape[1]].T
        i, j = torch.triu_indices(len(zs), len(zs), 1)
        return float((v[i] - v[j]).norm(dim=1).mean() / v.norm(dim=1).mean())

    def _edges(self, frac, lattices, num_atoms):
        if self.edge_style == "knn":
            return knn_edges(frac, lattices, num_atoms, self.knn, self.cutoff)
        return fc_edges(num_atoms)

    def denoise(self, types, frac, lattices, num_atoms, batch, t):
        """(eps_hat of the lattice (B, 3, 3), score_hat of the coordinates (N, 3))."""
        self.net.edges = self._edges(frac, lattices, num_atoms)
        out = self.net(atom_types=types, lattices=lattices, frac_coords=frac, num_atoms=num_atoms,
                       batch_idx=batch, t=t)
        self.net.edges = None
        return out.lattices, out.frac_coords

    def coord_target(self, rand_x: torch.Tensor, t: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The coordinates' training target for the noise ``sigma_t * rand_x``: the wrapped
        normal's score, normalised by ``sqrt(sigma_norm_t)`` (``t`` per cell, ``batch`` per atom)."""
        from chemeleon_dng.diffusion.models.dsm import d_log_p_wrapped_normal

        sig = self.sigmas[t][batch][:, None]
        return d_log_p_wrapped_normal(sig * rand_x, sig) / self.sigmas_norm[t][batch][:, None].sqrt()

    def loss(self, types, frac, lattices, num_atoms, batch, gen: torch.Generator | None = None, *,
             t: torch.Tensor | None = None, rand_x: torch.Tensor | None = None) -> dict:
        """DiffCSP's training loss on one batch (t uniform in 1..T per cell). ``t`` and
        ``rand_x`` (the coordinates' standard-normal noise) fix those draws, to compare the
        loss of the same noisy positions under other inputs (``benchmarks/diffcsp_species.py``)."""
        B, dev = lattices.shape[0], lattices.device
        if t is None:
            t = torch.randint(1, self.timesteps + 1, (B,), generator=gen, device="cpu").to(dev)
        sig = self.sigmas[t][batch][:, None]
        if rand_x is None:
            rand_x = torch.randn(frac.shape, generator=gen).to(dev)
        x_t = (frac + sig * rand_x) % 1.0
        if self.fixed_lattice is None:
            rand_l = torch.randn(lattices.shape, generator=gen).to(dev)
            acp = self.alphas_cumprod[t][:, None, None]
            l_t = acp.sqrt() * lattices + (1 - acp).sqrt() * rand_l
        else:
            l_t = lattices
        pred_l, pred_x = self.denoise(types, x_t, l_t, num_atoms, batch, t)
        loss_x = torch.mean((pred_x - self.coord_target(rand_x, t, batch)) ** 2)
        loss_l = torch.mean((pred_l - rand_l) ** 2) if self.fixed_lattice is None else torch.zeros((), device=dev)
        return {"loss": loss_l + loss_x, "loss_lattice": loss_l, "loss_coord": loss_x}

    @torch.no_grad()
    def sample(self, types: torch.Tensor, num_atoms: torch.Tensor, gen: torch.Generator,
               step_lr: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """DiffCSP's predictor-corrector sampler (``CSPDiffusion.sample``): returns
        (frac (N, 3) in [0, 1), lattices (B, 3, 3)). Noise is drawn on the CPU from ``gen``,
        so a seed gives the same draws on any device."""
        dev = next(self.parameters()).device
        types, num_atoms = types.to(dev), num_atoms.to(dev)
        B, N = num_atoms.shape[0], int(num_atoms.sum())
        batch = torch.repeat_interleave(torch.arange(B, device=dev), num_atoms)
        lr = self.step_lr if step_lr is None else float(step_lr)
        fixed = self.fixed_lattice is not None
        l_t = (torch.tensor(self.fixed_lattice, device=dev).expand(B, 3, 3).contiguous() if fixed
               else torch.randn((B, 3, 3), generator=gen).to(dev))
        x_t = torch.rand((N, 3), generator=gen).to(dev)
        for step in range(self.timesteps, 0, -1):
            t = torch.full((B,), step, dtype=torch.long, device=dev)
            last = step == 1
            sig, sig_prev, sig_norm = self.sigmas[step], self.sigmas[step - 1], self.sigmas_norm[step]
            # corrector (Langevin on the coordinates)
            rand_x = torch.zeros_like(x_t) if last else torch.randn((N, 3), generator=gen).to(dev)
            size = lr * (sig / self.sigma_begin) ** 2
            _, pred_x = self.denoise(types, x_t, l_t, num_atoms, batch, t)
            x_half = x_t - size * pred_x * sig_norm.sqrt() + (2 * size).sqrt() * rand_x
            # predictor (ancestral step of both)
            rand_x = torch.zeros_like(x_t) if last else torch.randn((N, 3), generator=gen).to(dev)
            size = sig ** 2 - sig_prev ** 2
            std = (sig_prev ** 2 * (sig ** 2 - sig_prev ** 2) / sig ** 2).sqrt()
            pred_l, pred_x = self.denoise(types, x_half % 1.0, l_t, num_atoms, batch, t)
            x_t = (x_half - size * pred_x * sig_norm.sqrt() + std * rand_x) % 1.0
            if not fixed:
                rand_l = torch.zeros_like(l_t) if last else torch.randn((B, 3, 3), generator=gen).to(dev)
                a, acp = self.alphas[step], self.alphas_cumprod[step]
                l_t = (l_t - (1 - a) / (1 - acp).sqrt() * pred_l) / a.sqrt() + self.posterior_std[step] * rand_l
        return x_t, l_t

    # ---------------------------------------------------------------- generation
    def _targets(self, n: int | None) -> list[dict]:
        from .data import load_split

        rows = load_split(self.data_source or self.dataset, self.target_split,
                          revision=None if self.data_source else self.dataset_revision,
                          columns=["id", "species", "atomic_numbers"])
        return rows if n is None else rows[:n]

    data_source: str | None = None  # a local dataset folder to read the targets from instead of the hub

    def sample_arrays(self, n: int | None, seed: int = 0, chunk_atoms: int = 20000,
                      targets: list[dict] | None = None, deadline: float | None = None,
                      ) -> list[tuple[str, list[str], np.ndarray, np.ndarray]]:
        """``(id, species, frac (n, 3), lattice (3, 3))`` per structure, float64. Fixed
        composition: ``n`` structures (ids ``diffcsp-s{seed}-{i}``); reconstruction: one per
        target row (its id), the first ``n`` rows when ``n`` is given. Cells are sampled in
        chunks of about ``chunk_atoms`` atoms; the seed fixes every draw. ``deadline``
        (``time.time()``): start no chunk after it and return the structures done."""
        if self.blocks is not None:
            if n is None or n <= 0:
                raise ValueError("n: give a positive number of structures")
            items = [(f"diffcsp-s{seed}-{i:05d}", self.species, self.numbers) for i in range(n)]
        else:
            targets = targets if targets is not None else self._targets(n)
            items = [(str(r["id"]), list(r["species"]), list(r["atomic_numbers"])) for r in targets]
        gen = torch.Generator().manual_seed(int(seed))
        was = self.training
        self.eval()
        out = []
        for part in _atom_chunks(items, chunk_atoms):
            if deadline is not None and time.time() > deadline:
                break
            types = torch.tensor([z for *_, zs in part for z in zs], dtype=torch.long) - 1
            num = torch.tensor([len(sp) for _, sp, _ in part], dtype=torch.long)
            frac, lat = self.sample(types, num, gen)
            frac, lat = frac.double().cpu().numpy(), lat.double().cpu().numpy()
            o = 0
            for (rid, sp, _), L in zip(part, lat):
                f = frac[o:o + len(sp)]
                out.append((rid, sp, origin_aligned(f, L) if self.align_origin else f, L))
                o += len(sp)
        self.train(was)
        return out

    def generate(self, n: int | None = None, seed: int = 0, id_prefix: str | None = None) -> list[dict]:
        """Structure rows (``dismai_data.structure.make_row``; no spglib for large cells)."""
        from dismai_data.structure import make_row

        return [make_row(sp, f % 1.0, L, rid, symmetry=len(sp) <= 64)
                for rid, sp, f, L in self.sample_arrays(n, seed)]


def origin_aligned(frac: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """``frac`` translated so that the atom nearest the cell origin (periodic Cartesian
    distance, pymatgen's ``Lattice.get_all_distances``) sits on it, wrapped into [0, 1)."""
    from pymatgen.core import Lattice

    k = int(np.argmin(Lattice(lattice).get_all_distances(frac, np.zeros((1, 3)))[:, 0]))
    return (frac - frac[k]) % 1.0


def _atom_chunks(items: Sequence[tuple], chunk_atoms: int):
    """Consecutive slices of ``items`` (``(id, species, numbers)``) of at most ``chunk_atoms``
    atoms in all (at least one item each): the cells sampled together."""
    i = 0
    while i < len(items):
        j, atoms = i, 0
        while j < len(items) and (j == i or atoms + len(items[j][1]) <= chunk_atoms):
            atoms += len(items[j][1])
            j += 1
        yield items[i:j]
        i = j


# -------------------------------------------------------------------- training data
def training_batches(rows: Sequence[dict], *, fixed: bool, source: str, vacuum_axis: int | None = None):
    """Per-row tensors ``(types (n,), frac (n, 3), lattice (3, 3))`` (rows need ``species``,
    ``atomic_numbers``, ``frac_coords``, ``lattice``) plus, for a fixed-composition set,
    ``(blocks, block_numbers)`` and the common cell (rows are put in block order and, with
    ``vacuum_axis``, into the longest cell: ``cryingan.training_tensor``)."""
    if fixed:
        from .cryingan import training_tensor

        data, blocks, lat = training_tensor(rows, source=source, vacuum_axis=vacuum_axis)
        table = dict(zip(rows[0]["species"], rows[0]["atomic_numbers"]))
        numbers = [int(table[s]) for s, _ in blocks]
        types = torch.tensor([z for z, (_, n) in zip(numbers, blocks) for _ in range(n)], dtype=torch.long) - 1
        L = torch.tensor(lat, dtype=torch.float32)
        return [(types, data[i], L) for i in range(data.shape[0])], (blocks, numbers), lat
    items = []
    for i, r in enumerate(rows):
        z = [int(v) for v in r["atomic_numbers"]]
        if min(z) < 1 or max(z) > MAX_Z:
            raise StructureError(f"atomic numbers {min(z)}..{max(z)} outside DiffCSP's 1..{MAX_Z}", source=source,
                                 row=str(r.get("id")), index=i, field="species")
        items.append((torch.tensor(z, dtype=torch.long) - 1,
                      torch.tensor(np.asarray(r["frac_coords"], dtype=np.float64) % 1.0, dtype=torch.float32),
                      torch.tensor(np.asarray(r["lattice"], dtype=np.float64), dtype=torch.float32)))
    return items, None, None


def collate(items: Sequence[tuple], device) -> tuple:
    types = torch.cat([it[0] for it in items]).to(device)
    frac = torch.cat([it[1] for it in items]).to(device)
    lattices = torch.stack([it[2] for it in items]).to(device)
    num = torch.tensor([len(it[0]) for it in items], dtype=torch.long, device=device)
    batch = torch.repeat_interleave(torch.arange(len(items), device=device), num)
    return types, frac, lattices, num, batch


def _restore(folder: Path, model: DiffCSP, opt, sched, gen: torch.Generator, device: str) -> dict:
    """Load the weights, optimiser, scheduler and RNG state of ``folder``'s last checkpoint
    into the given objects, drop the log lines after it; returns its training state."""
    f = folder / CHECKPOINT_STATE
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no training state to resume from")
    from safetensors.torch import load_model

    load_model(model, folder / "model.safetensors", device=str(device))  # the weights of that checkpoint
    ck = torch.load(f, map_location=device, weights_only=False)
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    gen.set_state(ck["generator"])
    state = ck["state"]
    log_file = folder / "training_log.jsonl"
    if log_file.is_file():  # epochs logged after that checkpoint are redone: drop them
        lines = log_file.read_text().splitlines()
        log_file.write_text("".join(x + "\n" for x in lines if json.loads(x)["epoch"] <= state["epoch"]))
    return state


def run_epoch(model: DiffCSP, items: Sequence[tuple], opt, gen: torch.Generator, batch_size: int, device: str,
              out_of_time: Callable[[], bool], state: dict,
              draw_t: Callable[[int, torch.Generator], torch.Tensor] | None = None) -> tuple[float, int, int]:
    """One pass over ``items`` in a random order (gradient values clipped to 0.5); stops
    early (a partial epoch) when ``out_of_time()`` after at least one batch. Returns
    (sum of loss x cells, cells seen, cells in the epoch); counts batches in ``state``.
    ``draw_t(cells, gen)``: the noise steps of a batch (default: DiffCSP's, uniform in 1..T,
    drawn by :meth:`DiffCSP.loss`; ``benchmarks/diffcsp_window.py`` draws them from a window)."""
    perm = torch.randperm(len(items), generator=gen).tolist()
    total, count = 0.0, 0
    for b in range(0, len(perm), batch_size):
        if count and out_of_time():
            break  # a partial epoch: its batches count, the epoch does not
        batch = collate([items[i] for i in perm[b:b + batch_size]], device)
        res = model.loss(*batch, gen=gen, t=None if draw_t is None else draw_t(batch[3].shape[0], gen).to(device))
        opt.zero_grad(set_to_none=True)
        res["loss"].backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)
        opt.step()
        total += float(res["loss"].detach()) * batch[3].shape[0]
        count += batch[3].shape[0]
        state["batches"] += 1
    return total, count, len(perm)


def train(model: DiffCSP, items: Sequence[tuple], folder: str | Path, *, epochs: int | None = None,
          max_seconds: float | None = None, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
          save_every: float = 120.0, resume: bool = False, log: Callable[[dict], None] | None = None,
          device: str = "cpu", command: str | None = None, initialised_from: dict | None = None) -> dict:
    """Train (or resume) ``model`` on ``items``, checkpointing weights, optimiser,
    scheduler and RNG state into ``folder`` every ``save_every`` seconds and at the end.
    ``resume``: the weights, optimiser, scheduler and RNG state of ``folder``'s last
    checkpoint replace ``model``'s (log lines after it are dropped) and training goes on.
    Stops after ``epochs`` epochs in all (counting earlier segments) or ``max_seconds`` of
    this call, whichever comes first. ``initialised_from`` (a new run that starts from
    another checkpoint's weights: :func:`warm_start`) is kept in the summary. Returns the
    training summary (also training.json)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.6, patience=30, min_lr=1e-4)
    gen = torch.Generator().manual_seed(seed)
    state = {"epoch": 0, "batches": 0, "seconds": 0.0, "segments": []}
    if resume:
        state = _restore(folder, model, opt, sched, gen, device)
    elif initialised_from is not None:
        state["initialised_from"] = initialised_from
    t0 = time.perf_counter()
    last_save = t0
    seg = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": _device_name(device), "epochs": 0,
           "seconds": 0.0, "command": command}

    def out_of_time() -> bool:
        return max_seconds is not None and time.perf_counter() - t0 >= max_seconds

    def save(status: str) -> dict:
        seg["seconds"] = round(time.perf_counter() - t0, 1)
        summary = {**state, "segments": state["segments"] + [seg], "status": status,
                   "seconds": round(state["seconds"] + seg["seconds"], 1), "batch_size": batch_size,
                   "learning_rate": lr, "seed": seed, "lr_now": opt.param_groups[0]["lr"], "n_train": len(items)}
        tmp = folder / (CHECKPOINT_STATE + ".tmp")
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "generator": gen.get_state(),
                    "state": {**summary, "segments": summary["segments"][:-1] + [dict(seg)]}}, tmp)
        save_checkpoint(model, folder, summary)
        tmp.replace(folder / CHECKPOINT_STATE)
        return summary

    while (epochs is None or state["epoch"] < epochs) and not out_of_time():
        total, count, n = run_epoch(model, items, opt, gen, batch_size, device, out_of_time, state)
        mean = total / max(count, 1)
        if count < n:
            state["partial_epoch_rows"] = count
            break
        sched.step(mean)
        state["epoch"] += 1
        seg["epochs"] += 1
        state["last_loss"] = round(mean, 6)
        rec = {"epoch": state["epoch"], "loss": round(mean, 6), "lr": opt.param_groups[0]["lr"],
               "seconds": round(state["seconds"] + time.perf_counter() - t0, 1)}
        sep = model.species_separation()  # a fixed composition: does the denoiser still tell the species apart?
        if sep is not None:
            rec["species_separation"] = round(sep, 4)
        with open(folder / "training_log.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        if log is not None:
            log(rec)
        if time.perf_counter() - last_save >= save_every:
            save("running")
            last_save = time.perf_counter()
    return save("finished" if epochs is not None and state["epoch"] >= epochs else "stopped")


def _device_name(device: str) -> str:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    import platform

    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} torch threads"


def save_checkpoint(model: DiffCSP, folder: str | Path, summary: dict | None = None, *,
                    half: bool = False) -> Path:
    """``config.json`` + ``model.safetensors`` (+ ``training.json``). ``half``: store the
    weights as float16 (what ships; loading casts them back to float32)."""
    folder = Path(folder)
    if half:
        import copy

        model = copy.deepcopy(model).cpu()
        for name, p in model.named_parameters():
            p.data = p.data.half()
    model.save_pretrained(folder)
    (folder / "README.md").unlink(missing_ok=True)  # the card is written at publishing time, with scores
    if summary is not None:
        (folder / "training.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return folder


def load_float(folder: str | Path, **kw) -> DiffCSP:
    """A checkpoint with float32 weights whatever precision it was stored in."""
    return DiffCSP.from_pretrained(folder, **kw).float()


def step_lr_for(dataset: str) -> float:
    return STEP_LR.get(dataset_name(dataset), DEFAULT_STEP_LR)


def sigma_end_for(dataset: str) -> float:
    return SIGMA_END.get(dataset_name(dataset), DEFAULT_SIGMA_END)


def warm_start(model: DiffCSP, folder: str | Path) -> dict:
    """Copy the denoiser weights of the checkpoint in ``folder`` into ``model`` (same
    architecture; the schedules stay ``model``'s own). Returns what to record of it."""
    if not (Path(folder) / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no DiffCSP checkpoint (config.json) to start from")
    src = load_float(folder)
    arch = ("hidden_dim", "time_dim", "num_layers", "num_freqs", "timesteps", "edge_style", "knn")
    diff = [k for k in arch if getattr(src, k) != getattr(model, k)]
    if diff or src.blocks != model.blocks:
        raise ValueError(f"{folder}: its checkpoint differs from this model in {diff or ['composition']}")
    model.net.load_state_dict(src.net.state_dict())
    info = json.loads((Path(folder) / "training.json").read_text()) if (Path(folder) / "training.json").is_file() \
        else {}
    weights = Path(folder) / "model.safetensors"
    # the weights' hash and their own training history: the folder may be overwritten by this run's result
    return {"folder": str(folder), "epoch": info.get("epoch"), "seconds": info.get("seconds"),
            "sigma_end": src.sigma_end, "timesteps": src.timesteps,
            "weights_sha256": sha256_file(weights) if weights.is_file() else None,
            "segments": info.get("segments", [])}


__all__ = ["ALIGNED_DATASETS", "DiffCSP", "collate", "fc_edges", "knn_edges", "load_float", "origin_aligned",
           "run_epoch", "save_checkpoint", "sigma_end_for", "step_lr_for", "train", "training_batches", "warm_start"]
