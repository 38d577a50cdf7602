"""The a-Si card's figures: radial distribution function, bond angles, coordination numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dismai_data.figures import pyplot


def _save(fig, folder, name: str) -> str:
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(folder / name, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return f"figures/{name}"


def rdf_figure(build, folder, *, analysis: dict) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot(analysis["r"], analysis["g"], color="#3a6ea5", lw=1.2)
    ax.axvline(analysis["cutoff"], color="gray", ls=":", lw=1, label=f"bond cutoff {analysis['cutoff']:.2f} Å")
    ax.axhline(1.0, color="lightgray", lw=0.8)
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_title(f"{build.pretty_name}: radial distribution function")
    ax.legend(fontsize=7)
    return _save(fig, folder, "rdf.png")


def angle_figure(build, folder, *, analysis: dict) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.hist(analysis["angles"], bins=np.arange(0, 180.5, 1.0), density=True, color="#a55f3a")
    ax.axvline(109.47, color="gray", ls=":", lw=1, label="tetrahedral 109.47°")
    ax.set_xlabel("bond angle (degrees)")
    ax.set_ylabel("probability density")
    ax.set_title(f"bond angles (mean {analysis['mean_bond_angle']:.2f}°, cutoff {analysis['cutoff']:.2f} Å)")
    ax.legend(fontsize=7)
    return _save(fig, folder, "bond_angles.png")


def coordination_figure(build, folder, *, analysis: dict) -> str:
    plt = pyplot()
    h = analysis["cn_hist"]
    frac = h / max(h.sum(), 1)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(np.arange(len(h)), 100 * frac, color="#4f8a3a")
    for k, v in enumerate(frac):
        if v > 0.001:
            ax.text(k, 100 * v, f"{100 * v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xlabel(f"coordination number (cutoff {analysis['cutoff']:.2f} Å)")
    ax.set_ylabel("% of atoms")
    ax.set_title(f"coordination ({100 * analysis['fraction_4fold']:.1f} % four-fold)")
    return _save(fig, folder, "coordination.png")
