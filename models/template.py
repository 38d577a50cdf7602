"""Template baseline for the reconstruction tasks (supercon, Alexandria, Perov-5, Carbon-24).

For each target row (the test split), given its composition (and Tc where the dataset
has one):

1. candidates: the training structures with the same *anonymous formula* (same number
   of atoms and the same multiset of element counts, so species can be swapped one for
   one); if there is none, the training structures with the same number of atoms; if
   none, those whose atom count divides the target's (repeated along the shortest
   lattice vector); otherwise no prediction is written for that row (the evaluation
   counts it as failed);
2. nearest candidate: sum over the matched element pairs of the Pauling
   electronegativity difference plus the atomic-radius difference (Å), plus
   ``|Tc - Tc'| / std(Tc_train)`` where Tc is given; ties broken by the seed;
3. substitute the species (each template element is replaced by the target element
   with the same count, elements of equal count paired by electronegativity order);
4. scale the cell isotropically to the volume estimate
   ``V_template * sum(r_target^3) / sum(r_template^3)`` (atomic radii).

The repo holds only ``config.json`` (dataset id and revision, splits); the training
structures are read from the hub with ``datasets.load_dataset`` (or from a local build
folder) when generating.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from huggingface_hub import ModelHubMixin

from dismai_data.structure import make_row
_PROPS: dict[str, tuple[float, float]] = {}


def element_props(symbol: str) -> tuple[float, float]:
    """(Pauling electronegativity, atomic radius Å) with pymatgen's values (fallbacks for
    missing data: electronegativity 1.5, radius 1.5 Å)."""
    if symbol not in _PROPS:
        import warnings

        from pymatgen.core import Element

        el = Element(symbol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = el.X
            r = el.atomic_radius
        x = float(x) if x is not None and np.isfinite(float(x)) else 1.5
        r = float(r) if r is not None else 1.5
        _PROPS[symbol] = (x, r)
    return _PROPS[symbol]


def _ordered_counts(species: list[str]) -> list[tuple[str, int]]:
    """Elements sorted by (count, electronegativity, symbol): the substitution pairing."""
    c = Counter(species)
    return sorted(c.items(), key=lambda kv: (kv[1], element_props(kv[0])[0], kv[0]))


def anonymous_key(species: list[str]) -> tuple[int, ...]:
    return tuple(sorted(Counter(species).values()))


class TemplateBaseline(ModelHubMixin, library_name="dismai-data", license="mit",
                       tags=["dismai-data", "materials", "crystal-structure-prediction", "template-baseline"]):
    """Nearest-composition template with species substitution and volume scaling."""

    def __init__(self, dataset: str = "dismai/perov-5", dataset_revision: str | None = None, train_split: str = "train",
                 target_split: str = "test", use_tc: bool = True, task: str = "",
                 baseline: str = "template"):
        if baseline != "template":
            raise ValueError(f"config.json says baseline={baseline!r}, not 'template'")
        self.baseline, self.dataset, self.dataset_revision = baseline, dataset, dataset_revision
        self.train_split, self.target_split, self.use_tc = train_split, target_split, bool(use_tc)
        self.task = task or Path(dataset.rstrip("/")).name
        self.data_source: str | None = None  # set to a local build folder to read from it instead of the hub

    def _save_pretrained(self, save_directory: Path) -> None:
        return None

    @classmethod
    def _from_pretrained(cls, *, model_id, revision, cache_dir, force_download, local_files_only, token,
                         **model_kwargs):
        return cls(**model_kwargs)

    def _rows(self, split: str) -> list[dict]:
        from .data import load_split

        cols = ["id", "species", "frac_coords", "lattice", "num_atoms", "volume"]
        rows = load_split(self.data_source or self.dataset, split, revision=None if self.data_source else
                          self.dataset_revision, columns=cols + ["tc"])
        return rows

    def fit_index(self, train: list[dict]) -> dict:
        by_key: dict[tuple, list[int]] = {}
        by_n: dict[int, list[int]] = {}
        for i, r in enumerate(train):
            by_key.setdefault((len(r["species"]),) + anonymous_key(r["species"]), []).append(i)
            by_n.setdefault(len(r["species"]), []).append(i)
        tcs = np.array([r.get("tc") for r in train if r.get("tc") is not None], dtype=float)
        return {"by_key": by_key, "by_n": by_n, "tc_scale": float(tcs.std()) if tcs.size > 1 else None}

    def predict_one(self, target: dict, train: list[dict], index: dict, rng: np.random.Generator,
                    rid: str | None = None) -> dict | None:
        """The prediction for one target row (steps 1-4 of the module doc), or None when no
        training structure can serve as its template."""
        species = list(target["species"])
        cands, repeat = _candidates(index, species)
        if not cands:
            return None
        tgt = _ordered_counts(species)
        tc = target.get("tc") if self.use_tc else None
        scores = np.array([_template_distance(tgt, list(train[ci]["species"]) * repeat, tc, train[ci].get("tc"),
                                              index["tc_scale"]) for ci in cands])
        best = np.flatnonzero(scores <= scores.min() + 1e-12)
        ci = cands[int(best[rng.integers(len(best))])] if len(best) > 1 else cands[int(best[0])]
        tpl_row = train[ci]
        frac, lat, tpl_species = _repeated(np.asarray(tpl_row["frac_coords"], dtype=np.float64),
                                           np.asarray(tpl_row["lattice"], dtype=np.float64),
                                           list(tpl_row["species"]), repeat)
        new_species = _substitute(tpl_species, tgt, len(species))
        v_old = sum(element_props(s)[1] ** 3 for s in tpl_species)
        v_new = sum(element_props(s)[1] ** 3 for s in new_species)
        lat = lat * (v_new / v_old) ** (1.0 / 3.0)
        return make_row(new_species, frac % 1.0, lat, rid or str(target["id"]))

    def generate(self, n: int | None = None, seed: int = 0, id_prefix: str | None = None) -> list[dict]:
        """One prediction per target-split row (the first ``n`` rows when ``n`` is smaller),
        with the target's id so the reconstruction evaluation can pair them."""
        train = self._rows(self.train_split)
        targets = self._rows(self.target_split)
        if n is not None:
            targets = targets[:n]
        index = self.fit_index(train)
        rng = np.random.default_rng(seed)
        out = []
        for t in targets:
            row = self.predict_one(t, train, index, rng)
            if row is not None:
                out.append(row)
        return out


def _candidates(index: dict, species: list[str]) -> tuple[list[int] | None, int]:
    """(training rows that can serve as the template, repeats of the template cell): the same
    anonymous formula, else the same atom count, else the largest atom count dividing the
    target's (repeated that many times); (None, 1) when there is none."""
    n = len(species)
    cands = index["by_key"].get((n,) + anonymous_key(species)) or index["by_n"].get(n)
    if cands:
        return cands, 1
    for m in sorted(index["by_n"], reverse=True):
        if m < n and n % m == 0:
            return index["by_n"][m], n // m
    return None, 1


def _template_distance(tgt: list[tuple[str, int]], tpl_species: list[str], tc, tpl_tc, tc_scale) -> float:
    """Sum over the matched elements of the electronegativity and radius differences (10 +
    the difference in element count when the patterns differ), plus the scaled Tc distance."""
    tpl = _ordered_counts(tpl_species)
    s = 0.0
    if len(tpl) == len(tgt):
        for (a, _), (b, _) in zip(tgt, tpl):
            xa, ra = element_props(a)
            xb, rb = element_props(b)
            s += abs(xa - xb) + abs(ra - rb)
    else:
        s += 10.0 + abs(len(tpl) - len(tgt))
    if tc is not None and tpl_tc is not None and tc_scale:
        s += abs(float(tc) - float(tpl_tc)) / tc_scale
    return s


def _repeated(frac: np.ndarray, lat: np.ndarray, species: list[str], repeat: int):
    """The cell repeated ``repeat`` times along its shortest lattice vector."""
    if repeat <= 1:
        return frac, lat, species
    axis = int(np.argmin(np.linalg.norm(lat, axis=1)))
    frac = np.concatenate([(frac + np.eye(3)[axis] * k) for k in range(repeat)])
    frac[:, axis] /= repeat
    lat = lat.copy()
    lat[axis] *= repeat
    return frac, lat, species * repeat


def _substitute(tpl_species: list[str], tgt: list[tuple[str, int]], n: int) -> list[str]:
    """The target's species on the template's sites: template and target elements paired in
    the same (count, electronegativity) order; a different stoichiometry pattern fills the
    sites in electronegativity order."""
    tpl_order = _ordered_counts(tpl_species)
    if len(tpl_order) == len(tgt) and all(a[1] == b[1] for a, b in zip(tpl_order, tgt)):
        mapping = {a: b for (a, _), (b, _) in zip(tpl_order, tgt)}
        return [mapping[s] for s in tpl_species]
    pool = [s for s, c in tgt for _ in range(c)]
    order = np.argsort([element_props(s)[0] for s in tpl_species], kind="stable")
    pool_sorted = sorted(pool, key=lambda s: element_props(s)[0])
    new_species = [None] * n
    for site, s in zip(order, pool_sorted):
        new_species[int(site)] = s
    return new_species
