"""Figures of a built dataset (PNG), as AtomBench's Figure 2 shows them: element
frequencies, the property histogram, the crystal-system distribution and atoms per
cell. Rendered with matplotlib's Agg backend; returned paths are relative to the
dataset folder so the card can reference them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed); every figure of the package uses it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plt():
    plt = pyplot()
    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "svg.hashsalt": "dismai"})
    return plt


CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)


def dataset_figures(build, folder: Path) -> list[str]:
    """Write the standard figures of ``build`` into ``folder``; return card-relative paths."""
    plt = _plt()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    groups = {}  # label -> rows (per split for single-config data, per config otherwise)
    for config, splits in build.configs.items():
        if build.single_config:
            for s in build.split_names(config):
                groups[s] = splits[s]
        else:
            groups[config] = [r for s in build.split_names(config) for r in splits[s]]
    all_rows = [r for rows in groups.values() for r in rows]

    # element frequencies: number of structures containing each element
    counts = Counter(el for r in all_rows for el in r["elements"])
    top = counts.most_common(40)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.bar([e for e, _ in top], [n for _, n in top], color="#3a6ea5")
    ax.set_ylabel("structures containing element")
    ax.set_title(f"{build.pretty_name}: element frequencies" + (" (40 most common)" if len(counts) > 40 else ""))
    ax.tick_params(axis="x", labelrotation=90)
    _save(fig, folder / "elements.png")
    out.append("figures/elements.png")

    if build.property_column:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        values = [np.array([r[build.property_column] for r in rows], dtype=float) for rows in groups.values()]
        lo = min(v.min() for v in values if v.size)
        hi = max(v.max() for v in values if v.size)
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 41)
        for label, v in zip(groups, values):
            ax.hist(v, bins=bins, histtype="step", linewidth=1.4, label=f"{label} ({v.size})")
        ax.set_xlabel(build.property_label or build.property_column)
        ax.set_ylabel("structures")
        ax.legend(fontsize=7)
        ax.set_title(f"{build.pretty_name}: {build.property_label or build.property_column}")
        _save(fig, folder / "property.png")
        out.append("figures/property.png")

    systems = Counter(r["crystal_system"] or "undetermined" for r in all_rows)
    if set(systems) != {"undetermined"}:
        labels = [s for s in CRYSTAL_SYSTEMS if s in systems] + (["undetermined"] if "undetermined" in systems else [])
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.bar(labels, [systems[s] for s in labels], color="#a55f3a")
        ax.set_ylabel("structures")
        ax.set_title(f"{build.pretty_name}: crystal systems (spglib)")
        ax.tick_params(axis="x", labelrotation=30)
        _save(fig, folder / "crystal_systems.png")
        out.append("figures/crystal_systems.png")

    natoms = Counter(r["num_atoms"] for r in all_rows)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    xs = sorted(natoms)
    ax.bar([str(x) for x in xs], [natoms[x] for x in xs], color="#4f8a3a")
    ax.set_xlabel("atoms per cell")
    ax.set_ylabel("structures")
    ax.set_title(f"{build.pretty_name}: atoms per cell")
    _save(fig, folder / "num_atoms.png")
    out.append("figures/num_atoms.png")

    for extra in build.extra_figures:
        out.append(extra(build, folder))
    return out
