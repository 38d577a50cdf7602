"""Statistics shared by every task: bootstrap intervals, histogram KLD, Wasserstein."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Bootstrap settings (benchmark-definitions section 3).
BOOTSTRAP_REPS = 1000
BOOTSTRAP_SEED = 7
#: Histogram KLD settings (stated in every result's ``settings``).
KLD_BINS = 50
KLD_EPSILON = 1e-10


def pivotal_errors(stat: float, samples: np.ndarray) -> tuple[float | None, float | None]:
    """``(p97.5 - stat, stat - p2.5)`` of bootstrap ``samples`` (the pivotal 95 % interval)."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0 or stat is None or not np.isfinite(stat):
        return None, None
    p_lo, p_hi = np.percentile(samples, [2.5, 97.5])
    return float(p_hi - stat), float(stat - p_lo)


def bootstrap_indices(n: int, reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """``reps x n`` resampling indices from a fresh ``numpy.random.default_rng(seed)``
    (every metric draws from its own fresh generator, so a number does not depend on
    which other metrics were computed)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(reps, n))


def bootstrap_mean(values, reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED
                   ) -> tuple[float | None, float | None, float | None]:
    """Mean of ``values`` with its pivotal bootstrap errors (value, error_low, error_high)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return None, None, None
    stat = float(v.mean())
    if v.size < 2:
        return stat, None, None
    idx = bootstrap_indices(v.size, reps, seed)
    lo, hi = pivotal_errors(stat, v[idx].mean(axis=1))
    return stat, lo, hi


def bootstrap_stat(n: int, fn: Callable[[np.ndarray], float], reps: int = BOOTSTRAP_REPS,
                   seed: int = BOOTSTRAP_SEED) -> tuple[float | None, float | None, float | None]:
    """``fn(indices)`` on all ``n`` items and on ``reps`` resamples of them."""
    if n == 0:
        return None, None, None
    stat = float(fn(np.arange(n)))
    if n < 2:
        return stat, None, None
    idx = bootstrap_indices(n, reps, seed)
    samples = np.array([fn(i) for i in idx], dtype=float)
    lo, hi = pivotal_errors(stat, samples)
    return stat, lo, hi


def histogram_edges(*arrays, bins: int = KLD_BINS) -> np.ndarray:
    """``bins`` equal-width edges spanning the union of the finite values of ``arrays``."""
    vals = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = float(vals.min()), float(vals.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def kld(p_values, q_values, edges: np.ndarray, epsilon: float = KLD_EPSILON) -> float:
    """``sum p log(p / q)`` in nats between the histograms of ``p_values`` (reference, P)
    and ``q_values`` (predicted, Q) on ``edges``; bins with p = 0 add nothing, an empty
    Q bin counts as probability ``epsilon``."""
    p, _ = np.histogram(np.asarray(p_values, dtype=float), bins=edges)
    q, _ = np.histogram(np.asarray(q_values, dtype=float), bins=edges)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p = p / p.sum()
    q = q / q.sum()
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], epsilon))))


def wasserstein(u, v) -> float:
    """1-D Wasserstein (earth mover's) distance, scipy's definition."""
    from scipy.stats import wasserstein_distance

    u = np.asarray(u, dtype=float)
    v = np.asarray(v, dtype=float)
    if u.size == 0 or v.size == 0:
        return float("nan")
    return float(wasserstein_distance(u, v))
