"""The neighbour list of one structure being relaxed: pairs searched within cutoff + skin, rebuilt
only when an atom has moved more than half the skin, and at every step exactly the bonds within
the cutoff (the graph matgl's ``Atoms2Graph`` would build)."""

from __future__ import annotations

import numpy as np

#: Neighbour-list skin (Å) of the batched engine: pairs are searched within cutoff + skin
#: and the list is rebuilt when an atom has moved more than skin / 2 since the last build.
DEFAULT_SKIN = 1.0


class SkinNeighbors:
    """Bonds of the structure at :attr:`pos` (Cartesian, float64) in the cell :attr:`cell`,
    within :attr:`cutoff`, from a list built with :attr:`skin` (the subclass sets them)."""

    pos: np.ndarray
    cell: np.ndarray
    cutoff: float
    skin: float

    def _init_neighbors(self) -> None:
        self._nl = None
        self._pos_at_build = None
        self.nl_builds = 0

    def graph_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(src, dst, images, frac_coords) of the bonds within the cutoff at the current positions."""
        if self._nl is None or np.max(np.sum((self.pos - self._pos_at_build) ** 2, axis=1)) > (self.skin / 2) ** 2:
            self._build_neighbors()
        src, dst, images, offsets = self._nl
        vec = self.pos[dst] + offsets - self.pos[src]
        keep = np.einsum("ij,ij->i", vec, vec) <= self.cutoff ** 2
        # exactly what matgl's Atoms2Graph keeps: pairs within the cutoff, minus an atom with itself
        keep &= self._not_self
        frac = np.linalg.solve(self.cell.T, self.pos.T).T  # ase.cell.Cell.scaled_positions
        return src[keep], dst[keep], images[keep], frac

    def bonds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(src, dst, vectors) of the bonds within the cutoff at the current positions; the
        vectors (float64) go from ``src`` to the periodic image of ``dst``. The same bonds as
        :meth:`graph_arrays` (what matgl's Atoms2Graph keeps)."""
        if self._nl is None or np.max(np.sum((self.pos - self._pos_at_build) ** 2, axis=1)) > (self.skin / 2) ** 2:
            self._build_neighbors()
        src, dst, _, offsets = self._nl
        vec = self.pos[dst] + offsets - self.pos[src]
        keep = (np.einsum("ij,ij->i", vec, vec) <= self.cutoff ** 2) & self._not_self
        return src[keep], dst[keep], vec[keep]

    def _build_neighbors(self) -> None:
        from pymatgen.optimization.neighbors import find_points_in_spheres

        src, dst, images, _ = find_points_in_spheres(
            self.pos, self.pos, r=self.cutoff + self.skin, pbc=np.array([1, 1, 1], dtype=np.int64),
            lattice=self.cell, tol=1e-8)
        images = np.asarray(images, dtype=np.float64)
        self._nl = (np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64), images, images @ self.cell)
        self._not_self = (self._nl[0] != self._nl[1]) | np.any(images != 0, axis=1)
        self._pos_at_build = self.pos.copy()
        self.nl_builds += 1
