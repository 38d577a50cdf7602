"""numpy's floating-point operation order inside numba kernels, for results equal bit for bit.

``dot3`` is numpy's dot/inner of two float64 3-vectors as OpenBLAS computes it (a fused
multiply-add chain), so an ``acos`` near +-1 sees the same argument as in the reference libraries.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c with one rounding (LLVM ``llvm.fma.f64``)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, inline="always")
def dot3(a0, a1, a2, b0, b1, b2):
    # numpy's dot/inner of two float64 3-vectors (OpenBLAS): fma(a2, b2, fma(a1, b1, a0 * b0))
    return fma(a2, b2, fma(a1, b1, a0 * b0))
