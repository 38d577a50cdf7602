"""Many structures: batched, checkpointed in parquet shards (resumable after a kill), in this
process or on Dask, with a progress bar that advances per finished structure."""

from __future__ import annotations

import os
from pathlib import Path

from dismai_data.physics.relax import forces
from dismai_data.physics.relax.batch import relax_stream
from dismai_data.physics.relax.cluster import relax_dask
from dismai_data.physics.relax.fire import optimizer_name
from dismai_data.physics.relax.inputs import as_items, check_elements
from dismai_data.physics.relax.potential import load_potential
from dismai_data.physics.relax.results import RelaxResult
from dismai_data.physics.relax.shards import finish_shard, resume


def relax_many(items, *, potential=None, fmax: float = 0.05, max_steps: int = 1000, batch_size: int = 8,
               checkpoint_dir: str | os.PathLike | None = None, shard_size: int | None = None,
               scheduler: str | None = None, workers: int = 1, progress: bool = True,
               optimizer: str = "FIRE", fast: bool | str = True, stats: dict | None = None,
               shard_metadata: dict | None = None) -> list[RelaxResult]:
    """Relax many structures, batched, checkpointed, optionally on Dask.

    ``items``: pymatgen Structures or ``(id, Structure)`` pairs (ids unique; a bare
    Structure's id is ``properties['id']`` or its index). Results come back in input order.

    ``checkpoint_dir``: each finished shard (``shard_size`` structures, default
    ``batch_size``; 1 with CG) is written there atomically as ``shard-<hash of its ids>.parquet``
    (structure rows of :mod:`dismai_data.structure` plus ``energy``, ``energy_per_atom``,
    ``fmax``, ``steps``, ``converged``, ``relaxed``, ``error``, ``input_sha256``). A rerun
    reads the shards first and relaxes only ids not in them, so a killed run resumes where
    it stopped; an id found there with a different input structure is an error.

    ``scheduler``: None relaxes in this process; ``"local"`` starts a
    ``dask.distributed.LocalCluster(n_workers=workers, threads_per_worker=1)``; any other
    string is the address of a running Dask scheduler. Each Dask task relaxes one shard.

    ``progress``: a tqdm bar over structures that advances as each one finishes.

    ``optimizer``: ``"FIRE"`` (default; the trajectory of ase.optimize.FIRE), ``"LBFGS"`` or
    ``"CG"`` (Dismai-Bench's fmin_cg, :mod:`.cg`; ``max_steps`` counts its iterations).
    Checkpointed results are reused whatever the ``fmax``/``max_steps``/``optimizer`` of
    the run that wrote them: use one folder per setting.

    ``fast``: evaluate with the fast exact M3GNet path
    (:class:`~dismai_data.physics.fast_m3gnet.FastM3GNetPES`, the default), with that path through
    ``torch.compile`` (``"compile"``: inductor's fused kernels, less CPU per force call after a
    compilation in each process; eager if compiling fails), or with matgl's own forward (False);
    same function, float32 rounding differs.

    ``stats``: a dict that receives ``model_calls`` (batched evaluations) for in-process runs.

    ``shard_metadata``: a JSON-able dict written into every new shard (:func:`read_shard_metadata`
    reads it back). Its ``parameters`` entry, if any, is checked against every shard already in
    the folder (:func:`read_checkpoints`): shards of a run with other parameters are refused;
    the rest (where and how a shard was relaxed) is provenance, not checked.
    """
    pairs = as_items(items, caller="relax_many")
    optimizer = optimizer_name(optimizer)
    fast = forces.fast_mode(fast)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # CG relaxes one structure at a time, minutes each: every structure is its own shard
    shard_size = int(shard_size or (1 if optimizer == "CG" else batch_size))
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if scheduler is None or scheduler == "local":
        pot_for_check = potential if potential is not None else load_potential()
        if scheduler is None:
            potential = pot_for_check
        check_elements(pairs, pot_for_check.model.element_types, "relax_many")

    results: list[RelaxResult | None] = [None] * len(pairs)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        todo = resume(folder, pairs, results, None if shard_metadata is None else shard_metadata.get("parameters"))
    else:
        todo = list(range(len(pairs)))
    shards = [todo[k:k + shard_size] for k in range(0, len(todo), shard_size)]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), desc="relaxing", unit="structure",
               disable=not progress, smoothing=0.1)
    try:
        if not todo:
            pass
        elif scheduler is None:
            _relax_in_process(pairs, shards, results, potential, fmax, max_steps, batch_size, folder, bar,
                              optimizer, fast, stats, shard_metadata)
        else:
            relax_dask(pairs, shards, results, potential, fmax, max_steps, batch_size, folder, bar,
                       scheduler, workers, optimizer, fast, shard_metadata)
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def _relax_in_process(pairs, shards, results, potential, fmax, max_steps, batch_size, folder, bar, optimizer,
                      fast=True, stats=None, metadata=None):
    shard_of = {i: k for k, shard in enumerate(shards) for i in shard}
    remaining = [len(shard) for shard in shards]
    stream = ((i, pairs[i][0], pairs[i][1]) for shard in shards for i in shard)
    for i, res in relax_stream(stream, potential, fmax=fmax, max_steps=max_steps, batch_size=batch_size,
                               optimizer=optimizer, fast=fast, stats=stats):
        results[i] = res
        bar.update(1)
        k = shard_of[i]
        remaining[k] -= 1
        if remaining[k] == 0:
            finish_shard(pairs, shards[k], results, folder, metadata)
