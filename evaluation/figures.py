"""PNG figures of an evaluation (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dismai_data.figures import pyplot

PARAM_LABELS = {"a": "a (Å)", "b": "b (Å)", "c": "c (Å)", "alpha": "α (°)", "beta": "β (°)", "gamma": "γ (°)"}


def lattice_histograms(target: np.ndarray, pred: np.ndarray, edges: dict, klds: dict, path: Path,
                       title: str) -> Path:
    """AtomBench Figs 3-4: target vs predicted histograms of the six Niggli parameters,
    percentage of materials per bin, KLD in each panel."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for j, (p, ax) in enumerate(zip(("a", "b", "c", "alpha", "beta", "gamma"), axes.ravel())):
        e = edges[p]
        for vals, color, label in ((target[:, j], "tab:blue", "target"), (pred[:, j], "goldenrod", "predicted")):
            vals = vals[np.isfinite(vals)]
            if vals.size:
                ax.hist(vals, bins=e, weights=np.full(vals.size, 100.0 / vals.size), alpha=0.55, color=color,
                        label=label)
        k = klds.get(p)
        ax.set_title(f"KLD = {k:.3f}" if k is not None and np.isfinite(k) else "KLD = n/a", fontsize=10)
        ax.set_xlabel(PARAM_LABELS[p])
        ax.set_ylabel("Materials (%)")
    axes[0, 0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def overlay_histograms(series: dict[str, np.ndarray], path: Path, title: str, xlabel: str, bins=40,
                       note: str | None = None) -> Path:
    """Overlaid normalised histograms of named 1-D samples (densities, energies, SRO...)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    allv = np.concatenate([np.asarray(v, float) for v in series.values() if len(v)] or [np.zeros(1)])
    allv = allv[np.isfinite(allv)]
    edges = np.histogram_bin_edges(allv, bins=bins) if allv.size else bins
    for name, vals in series.items():
        vals = np.asarray(vals, float)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            ax.hist(vals, bins=edges, density=True, alpha=0.5, label=f"{name} (n={vals.size})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def grouped_bars(groups: dict[str, dict[str, float]], path: Path, title: str, ylabel: str) -> Path:
    """Stacked bars: one bar per group (e.g. crystal system), one colour per class."""
    plt = pyplot()
    names = list(groups)
    classes = sorted({c for g in groups.values() for c in g})
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names) + 2), 4))
    bottom = np.zeros(len(names))
    for c in classes:
        vals = np.array([groups[g].get(c, 0.0) for g in names])
        ax.bar(names, vals, bottom=bottom, label=c)
        bottom += vals
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend()
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
