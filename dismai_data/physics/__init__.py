"""The physics engines the builders and the evaluation share.

:mod:`.ce` (cluster expansion and its Monte Carlo), :mod:`.lammps` (LAMMPS runs),
:mod:`.relax` (batched M3GNet relaxation) and :mod:`.matgl_compat` (the fast M3GNet
evaluator). They read and write the row contract (:mod:`dismai_data.schema`,
:mod:`dismai_data.structure`) and nothing above it.
"""
