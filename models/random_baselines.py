"""The random baselines Dismai-Bench compares against (paper 000).

- :class:`RandomSolidSolution` (alloys): Cr51 Fe154 Ni51 placed uniformly at random on
  the 256 sites of the reference 4 x 4 x 4 FCC cell (a = 3.6 Å): an ideal random solid
  solution (all Warren-Cowley parameters 0 in expectation), no vacancies.
- :class:`RandomPacking` (a-Si): N atoms placed one by one uniformly at random in a cube
  at the target density, a trial rejected if it comes closer than ``min_distance`` to
  any placed atom (random sequential addition, periodic).
- :class:`RandomInterface` (interface): the interface builder's own random generator
  (``dismai_data.builders.interface.unrelaxed_interfaces``), before relaxation.

None has weights: the repo's ``config.json`` holds all parameters (a
``huggingface_hub.ModelHubMixin``), so ``RandomPacking.from_pretrained(repo)`` and
``dismai_data.models.load(repo)`` rebuild the generator, and the same seed gives the
same structures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from huggingface_hub import ModelHubMixin

from dismai_data.structure import make_row

_MIXIN = dict(library_name="dismai-data", license="mit", tags=["dismai-data", "materials", "random-baseline"])


class _ConfigOnly(ModelHubMixin, **_MIXIN):
    """A baseline fully described by its ``config.json``."""

    def _save_pretrained(self, save_directory: Path) -> None:  # config.json is written by the mixin
        return None

    @classmethod
    def _from_pretrained(cls, *, model_id, revision, cache_dir, force_download, local_files_only, token,
                         **model_kwargs):
        return cls(**model_kwargs)


def fcc_sites(a: float = 3.6, reps: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(fractional sites (4 reps^3, 3), lattice (3, 3)) of a reps^3 conventional FCC cell."""
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    cells = np.array([[i, j, k] for i in range(reps) for j in range(reps) for k in range(reps)], dtype=float)
    frac = ((cells[:, None, :] + basis[None, :, :]) / reps).reshape(-1, 3)
    return frac, np.eye(3) * a * reps


class RandomSolidSolution(_ConfigOnly):
    """Ideal random solid solution on an FCC supercell."""

    def __init__(self, composition: dict | None = None, lattice_constant: float = 3.6, reps: int = 4,
                 task: str = "alloy", baseline: str = "random-solid-solution"):
        if baseline != "random-solid-solution":
            raise ValueError(f"config.json says baseline={baseline!r}, not 'random-solid-solution'")
        self.baseline = baseline
        self.composition = {str(k): int(v) for k, v in (composition or {"Cr": 51, "Fe": 154, "Ni": 51}).items()}
        self.lattice_constant, self.reps, self.task = float(lattice_constant), int(reps), task
        n_sites = 4 * self.reps ** 3
        if sum(self.composition.values()) != n_sites or min(self.composition.values()) < 0:
            raise ValueError(f"composition {self.composition} must fill the {n_sites} FCC sites exactly")

    def generate(self, n: int, seed: int = 0, id_prefix: str | None = None) -> list[dict]:
        sites, lattice = fcc_sites(self.lattice_constant, self.reps)
        species = [s for s, k in self.composition.items() for _ in range(k)]
        rng = np.random.default_rng(seed)
        prefix = id_prefix or f"random-solid-solution-s{seed}"
        return [make_row(species, sites[rng.permutation(len(sites))], lattice, f"{prefix}-{i:05d}", symmetry=False)
                for i in range(n)]


def si_cube_edge(n_atoms: int, density: float) -> float:
    """Edge (Å) of a cube of ``n_atoms`` Si at ``density`` g/cm^3."""
    return (n_atoms * 28.0855 / 6.02214076e23 / density * 1e24) ** (1.0 / 3.0)


def random_packing(n_atoms: int, edge: float, min_distance: float, rng: np.random.Generator,
                   max_trials: int = 200_000) -> np.ndarray:
    """Fractional coordinates of ``n_atoms`` points in a periodic cube of ``edge`` Å, no
    two closer than ``min_distance`` (random sequential addition)."""
    pts = np.empty((n_atoms, 3))
    k = trials = 0
    lim = (min_distance / edge) ** 2
    while k < n_atoms:
        trials += 1
        if trials > max_trials:
            raise RuntimeError(f"random packing: placed only {k} of {n_atoms} atoms with min distance "
                               f"{min_distance} Å in a {edge:.3f} Å cube after {max_trials} trials; "
                               "lower min_distance or the density")
        p = rng.random(3)
        if k:
            d = pts[:k] - p
            d -= np.round(d)
            if np.min((d * d).sum(1)) < lim:
                continue
        pts[k] = p
        k += 1
    return pts


class RandomPacking(_ConfigOnly):
    """Random dense packing with a minimum distance (the a-Si random baseline)."""

    def __init__(self, element: str = "Si", n_atoms: int = 256, density: float = 2.28, min_distance: float = 2.0,
                 task: str = "a-si", baseline: str = "random-packing"):
        if baseline != "random-packing":
            raise ValueError(f"config.json says baseline={baseline!r}, not 'random-packing'")
        if element != "Si":
            raise ValueError(f"element {element!r}: only Si (the a-Si task) is supported")
        self.baseline, self.element, self.task = baseline, element, task
        self.n_atoms, self.density, self.min_distance = int(n_atoms), float(density), float(min_distance)
        self.edge = si_cube_edge(self.n_atoms, self.density)

    def generate(self, n: int, seed: int = 0, id_prefix: str | None = None) -> list[dict]:
        rng = np.random.default_rng(seed)
        lattice = np.eye(3) * self.edge
        prefix = id_prefix or f"random-packing-s{seed}"
        species = [self.element] * self.n_atoms
        return [make_row(species, random_packing(self.n_atoms, self.edge, self.min_distance, rng), lattice,
                         f"{prefix}-{i:05d}", symmetry=False) for i in range(n)]


class RandomInterface(_ConfigOnly):
    """The interface builder's random generator, before relaxation."""

    def __init__(self, task: str = "interface", baseline: str = "random-interface"):
        if baseline != "random-interface":
            raise ValueError(f"config.json says baseline={baseline!r}, not 'random-interface'")
        self.baseline, self.task = baseline, task

    @staticmethod
    def builder_generator():
        try:
            from dismai_data.builders.interface import unrelaxed_interfaces
        except ImportError as exc:
            raise RuntimeError("the random interface baseline needs "
                               "dismai_data.builders.interface.unrelaxed_interfaces (the interface builder), "
                               f"which this installation does not have ({exc})") from None
        return unrelaxed_interfaces

    def generate(self, n: int, seed: int = 0, id_prefix: str | None = None) -> list[dict]:
        gen = self.builder_generator()
        prefix = id_prefix or f"random-interface-s{seed}"
        rows = []
        for i, item in enumerate(gen(n, seed)):
            if isinstance(item, dict) and "frac_coords" in item:
                rows.append(make_row(item["species"], item["frac_coords"], item["lattice"], f"{prefix}-{i:05d}",
                                     symmetry=False))
            else:  # an ASE Atoms or pymatgen Structure
                from dismai_data.structure import row_from_atoms, row_from_structure

                conv = row_from_atoms if hasattr(item, "get_chemical_symbols") else row_from_structure
                rows.append(conv(item, f"{prefix}-{i:05d}", symmetry=False))
        return rows
