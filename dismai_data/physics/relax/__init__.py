"""The shared relaxation engine: positions-only relaxation (lattice fixed) with the
M3GNet-MP-2021.2.8-PES universal potential through matgl, used by the interface builder and by
the evaluation (interface and a-Si tasks).

* :func:`load_potential` (:mod:`.potential`) -- the relaxer from the hub model repo
  :data:`RELAXER_REPO`, else the copy packaged in ``dismai_data/physics/weights``
  (``potential.dismai_source`` says which).
* :func:`relax_ase` (:mod:`.ase_reference`) -- the reference: one structure at a time, matgl's
  ASE calculator driven by :class:`ase.optimize.FIRE` (or LBFGS, or ASE's SciPyFminCG).
* :func:`relax_batch` (:mod:`.batch`) -- several structures in one model call per step, each
  with its own FIRE state following ASE's update rule and parameters exactly (:mod:`.fire`),
  on a skin neighbour list that keeps exactly the bonds ASE's calculator would (:mod:`.neighbors`);
  evaluated with :class:`~dismai_data.physics.fast_m3gnet.FastM3GNetPES` (the same M3GNet function
  with less work, equal to matgl's calculator in the tests), optionally through ``torch.compile``
  (``fast="compile"``), or matgl's own forward (``fast=False``) (:mod:`.forces`).
* ``optimizer="CG"`` (:mod:`.cg`) -- Dismai-Bench's interface relaxation: scipy's fmin_cg driven
  as its ``relax_int.py`` drives it, one structure at a time (line searches keep no batch in
  step), with the same forces; checked step for step against ASE's ``SciPyFminCG``.
* :func:`relax_many` (:mod:`.many`) -- many structures: batched, checkpointed in parquet shards
  (:mod:`.shards`, resumable after a kill), optionally on Dask (:mod:`.cluster`), with a
  progress bar that advances per finished structure.

Relaxation criterion everywhere: max per-atom force norm ``< fmax`` (ASE's criterion);
``steps`` counts optimizer steps (ASE's ``nsteps``).
"""

from __future__ import annotations

from dismai_data.physics.relax.ase_reference import relax_ase
from dismai_data.physics.relax.batch import relax_batch
from dismai_data.physics.relax.cluster import keep_freed_memory, local_cluster
from dismai_data.physics.relax.fire import FIRE_PARAMS, LBFGS_PARAMS, OPTIMIZERS
from dismai_data.physics.relax.inputs import RelaxInputError, input_hash
from dismai_data.physics.relax.many import relax_many
from dismai_data.physics.relax.neighbors import DEFAULT_SKIN
from dismai_data.physics.relax.potential import RELAXER_REPO, WEIGHTS_NAME, load_potential, local_weights_dir
from dismai_data.physics.relax.results import RelaxResult
from dismai_data.physics.relax.shards import (SHARD_METADATA_KEY, checkpoint_index, read_checkpoints,
                                              read_shard_metadata)

__all__ = [
    "RELAXER_REPO",
    "WEIGHTS_NAME",
    "FIRE_PARAMS",
    "LBFGS_PARAMS",
    "OPTIMIZERS",
    "DEFAULT_SKIN",
    "SHARD_METADATA_KEY",
    "RelaxResult",
    "RelaxInputError",
    "local_weights_dir",
    "load_potential",
    "relax_ase",
    "relax_batch",
    "relax_many",
    "local_cluster",
    "keep_freed_memory",
    "read_checkpoints",
    "read_shard_metadata",
    "checkpoint_index",
    "input_hash",
]
