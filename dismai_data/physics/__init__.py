"""The physics engines the builders and the evaluation share.

:mod:`.ce` (cluster expansion and its Monte Carlo), :mod:`.lammps` (LAMMPS runs),
:mod:`.relax` (batched M3GNet relaxation, with the packaged relaxer weights in ``weights/``),
:mod:`.matgl_fix` (matgl 4.x fix for DGL-era M3GNet weights), :mod:`.fast_m3gnet` (the fast
exact M3GNet evaluator, with :mod:`.fast_m3gnet_layers`, the oneDNN products of :mod:`.onednn`
and the CPU check of :mod:`.cpu`). They read and write the row contract (:mod:`dismai_data.schema`,
:mod:`dismai_data.structure`) and nothing above it.
"""
