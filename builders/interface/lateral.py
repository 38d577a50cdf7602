"""Lateral-cell arithmetic without BLAS or LAPACK, so a candidate has the same bits on every CPU."""

from __future__ import annotations

import numpy as np


def inv2(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x2 matrix by the explicit formula (no LAPACK: see :func:`times2`)."""
    det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    return np.array([[m[1, 1], -m[0, 1]], [-m[1, 0], m[0, 0]]]) / det


def lateral_frac(cart: np.ndarray, lat2: np.ndarray, c: float) -> np.ndarray:
    """Fractional coordinates in the cell (lat2[0], lat2[1], (0, 0, c)) without LAPACK (see
    :func:`times2`); the lateral vectors must lie in the xy plane."""
    if np.any(lat2[:, 2] != 0.0):
        raise RuntimeError("references.json: lateral cell vectors are not in the xy plane")
    return np.column_stack([times2(cart[:, :2], inv2(lat2[:, :2])), cart[:, 2] / c])


def times2(f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``f @ m`` for f (..., 2) and a 2x2 ``m`` as elementwise products and one sum. ``@`` goes
    to BLAS, whose kernels (chosen per CPU: OpenBLAS Haswell, SkylakeX, Zen, ...) round
    differently in the last bits; elementwise IEEE arithmetic gives the same bits on every CPU,
    so a candidate and its input sha256 are the same wherever it is generated (checkpoint shards
    relaxed on one machine are then accepted on another)."""
    return f[..., 0:1] * m[0] + f[..., 1:2] * m[1]
