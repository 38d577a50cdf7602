"""The optimisers of the batched engine: one structure being relaxed (:class:`Relaxation`) with
the update of ``ase.optimize.FIRE`` (default parameters, same arithmetic and dtypes, so the same
trajectory) or of ``ase.optimize.LBFGS``."""

from __future__ import annotations

import numpy as np

from dismai_data.physics.relax.neighbors import SkinNeighbors

#: FIRE parameters: ase.optimize.FIRE defaults (ase 3.29), used by both engines.
FIRE_PARAMS = dict(dt=0.1, maxstep=0.2, dtmax=1.0, Nmin=5, finc=1.1, fdec=0.5, astart=0.1, fa=0.99, a=0.1)

#: LBFGS parameters: ase.optimize.LBFGS defaults (ase 3.29), optional in the batched engine.
LBFGS_PARAMS = dict(maxstep=0.2, memory=100, damping=1.0, alpha=70.0)

#: FIRE and LBFGS step the whole batch together; CG (:mod:`.cg`) runs one structure at a time.
OPTIMIZERS = ("FIRE", "LBFGS", "CG")


def optimizer_name(optimizer) -> str:
    """``optimizer`` checked and upper-cased (one of :data:`OPTIMIZERS`)."""
    name = str(optimizer).upper()
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {optimizer!r} is not supported (choose from {', '.join(OPTIMIZERS)})")
    return name


class Relaxation(SkinNeighbors):
    """One structure being relaxed: positions, ASE-FIRE (or LBFGS) state, skin neighbour list."""

    def __init__(self, index: int, key: str, structure, node_type, cutoff: float, skin: float,
                 optimizer: str = "FIRE"):
        self.index = index
        self.key = key
        self.structure = structure
        self.cell = np.array(structure.lattice.matrix, dtype=np.float64)
        self.pos = np.array(structure.cart_coords, dtype=np.float64)
        self.n = len(structure)
        self.node_type = node_type
        self.cutoff = cutoff
        self.skin = skin
        # ASE FIRE state (ase/optimize/fire.py)
        p = FIRE_PARAMS
        self.dt, self.a, self.Nsteps, self.vel = p["dt"], p["a"], 0, None
        self.nsteps = 0
        self.optimizer = optimizer
        if optimizer == "LBFGS":
            from ase.optimize.lbfgs import LBFGSMethod, initial_inverse_position_hessian

            p = LBFGS_PARAMS
            self._lbfgs = LBFGSMethod(memory=p["memory"],
                                      initial_inverse_hessian=initial_inverse_position_hessian(3 * self.n,
                                                                                               p["alpha"]))
            self._r0 = self._f0 = None
        self._init_neighbors()

    def step(self, forces: np.ndarray) -> None:
        if self.optimizer == "LBFGS":
            self.lbfgs_step(forces)
        else:
            self.fire_step(forces)

    def lbfgs_step(self, forces: np.ndarray) -> None:
        """One ase.optimize.LBFGS step (default parameters, no line search), with ASE's own
        L-BFGS state object (``LBFGSMethod``) and the same step limiting."""
        p = LBFGS_PARAMS
        forces = forces.ravel()
        pos = self.pos.ravel().copy()
        if self._lbfgs.iteration > 0:
            self._lbfgs.update(pos, -forces, self._r0, -self._f0)
        dr = self._lbfgs.compute_step(-forces)
        longest = np.linalg.norm(dr.reshape(-1, 3), axis=1).max()
        if longest >= p["maxstep"]:
            dr *= p["maxstep"] / longest
        dr = dr * p["damping"]
        self.pos = (pos + dr).reshape(-1, 3)
        self._r0 = pos
        self._f0 = forces

    def fire_step(self, forces: np.ndarray) -> None:
        """One ase.optimize.FIRE step (default parameters, no downhill check), same
        arithmetic and dtypes as ASE: ``forces`` is the float32 force array."""
        p = FIRE_PARAMS
        gradient = forces.ravel()  # ASE: -optimizable.get_gradient() == forces
        if self.vel is None:
            self.vel = np.zeros(3 * self.n)
        else:
            vf = np.vdot(gradient, self.vel)
            grad2 = np.vdot(gradient, gradient)
            if vf > 0.0:
                self.vel = ((1.0 - self.a) * self.vel
                            + self.a * gradient / np.sqrt(grad2) * np.sqrt(np.vdot(self.vel, self.vel)))
                if self.Nsteps > p["Nmin"]:
                    self.dt = min(self.dt * p["finc"], p["dtmax"])
                    self.a *= p["fa"]
                self.Nsteps += 1
            else:
                self.vel[:] *= 0.0
                self.a = p["astart"]
                self.dt *= p["fdec"]
                self.Nsteps = 0
        self.vel += self.dt * gradient
        dr = self.dt * self.vel
        normdr = np.sqrt(np.vdot(dr, dr))
        if normdr > p["maxstep"]:
            dr = p["maxstep"] * dr / normdr
        self.pos = (self.pos.ravel() + dr).reshape(-1, 3)
