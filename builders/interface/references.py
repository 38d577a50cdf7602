"""The interface's raw inputs (``builders/raw/interface``, sha256 checked): the published bulk
cells and ``references.json`` (bulk cells used, ZSL match, slabs), read and (re)made."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dismai_data.builders.interface.slabs import make_slabs


RAW = Path(__file__).resolve().parent.parent / "raw" / "interface"

#: sha256 of the files in builders/raw/interface (checked before use)
RAW_SHA256 = {
    "LiCoO2_R-3m.json": "fb76ad28094c4972a649fd9eecc843f1c06462603d0e901b32bc644d34a02842",
    "Li3ScCl6_C2m.json": "da3e05b0a5f0bc77231dce7e5e4a5689ca2cff473c0da0e8ac615b48cd72da2a",
    "references.json": None,  # checked against REFERENCES_SHA256 (raw_input)
}

REFERENCES_SHA256 = "bc8e8f9444642aa78885f29082691ab8ef4e31c292624071c03f355831cb1269"


def raw_input(name: str) -> Path:
    from dismai_data.raw import RawDataError, sha256_file

    path = RAW / name
    if not path.is_file():
        raise RawDataError(f"raw input {path} is missing")
    expected = REFERENCES_SHA256 if name == "references.json" else RAW_SHA256[name]
    got = sha256_file(path)
    if got != expected:
        raise RawDataError(f"raw input {path} has sha256 {got}, expected {expected}")
    return path


def published_bulk(name: str):
    """The bulk cell ``LiCoO2_R-3m`` or ``Li3ScCl6_C2m`` from its crystallography file."""
    from pymatgen.core import Lattice, Structure

    spec = json.loads(raw_input(f"{name}.json").read_text())
    lat = spec["lattice"]
    lattice = Lattice.from_parameters(lat["a"], lat["b"], lat["c"], lat["alpha"], lat["beta"], lat["gamma"])
    s = Structure.from_spacegroup(spec["space_group"], lattice, [x["species"] for x in spec["sites"]],
                                  [x["xyz"] for x in spec["sites"]])
    return s


def slabs_to_json(slabs: dict) -> dict:
    def part(p):
        return {"species": p["species"], "cart": np.round(p["cart"], 10).tolist(), "plane": p["plane"].tolist()}
    return {"lateral": np.round(slabs["lateral"], 10).tolist(), "match": slabs["match"],
            "lco": part(slabs["lco"]), "lsc": part(slabs["lsc"])}


@lru_cache(maxsize=1)
def references() -> dict:
    """The cached slabs (``builders/raw/interface/references.json``, sha256 checked)."""
    d = json.loads(raw_input("references.json").read_text())
    for k in ("lco", "lsc"):
        d[k]["cart"] = np.array(d[k]["cart"], dtype=float)
        d[k]["plane"] = np.array(d[k]["plane"], dtype=int)
    d["lateral"] = np.array(d["lateral"], dtype=float)
    return d


def conventional_like(published, relaxed_prim):
    """The relaxed primitive cell expressed in the published conventional cell: the published
    cell's lattice vectors as integer combinations of its primitive ones, applied to the relaxed
    primitive lattice (the relaxation keeps the primitive cell's orientation and setting)."""
    from pymatgen.core import Lattice, Structure

    prim = published.get_primitive_structure()
    m = np.rint(published.lattice.matrix @ np.linalg.inv(prim.lattice.matrix))
    if not np.allclose(m @ prim.lattice.matrix, published.lattice.matrix, atol=1e-4):
        raise RuntimeError("published cell is not an integer supercell of its primitive cell")
    return Structure(Lattice(m @ relaxed_prim.lattice.matrix), [], [])


def make_references(bulk_cells: str = "published", potential=None, path: Path | None = None) -> Path:
    """(Re)write ``references.json``: the bulk cells used (``published`` crystallography, or
    ``m3gnet``: both relaxed, cell and positions, with matgl's Relaxer, fmax 0.01 eV/Å), the
    ZSL match and the two slabs. ``python -m dismai_data.builders.interface`` runs it."""
    lco, lsc = published_bulk("LiCoO2_R-3m"), published_bulk("Li3ScCl6_C2m")
    record: dict[str, Any] = {"bulk_cells": bulk_cells}
    if bulk_cells == "m3gnet":
        from matgl.ext.ase import Relaxer

        if potential is None:
            from dismai_data.physics.relax import load_potential

            potential = load_potential()
        relaxed = []
        record["potential"] = getattr(potential, "dismai_source", "M3GNet-MP-2021.2.8-PES")
        record["bulk_relaxation"] = {}
        for name, s in (("LiCoO2", lco), ("Li3ScCl6", lsc)):
            prim = s.get_primitive_structure()
            r = Relaxer(potential, relax_cell=True).relax(prim, fmax=0.01, steps=2000, verbose=False)
            f = r["final_structure"]
            forces = np.asarray(r["trajectory"].forces[-1])
            fmax = float(np.sqrt((forces ** 2).sum(axis=1)).max())
            n_steps = len(r["trajectory"].energies)
            if fmax > 0.01 + 1e-9:
                raise RuntimeError(f"make_references: {name} bulk relaxation did not reach fmax 0.01 eV/Å in "
                                   f"2000 steps (max force {fmax:.4f})")
            # lattice parameters in the published (conventional) setting, before and after
            conv = {"published": s, "m3gnet": conventional_like(s, f)}
            record["bulk_relaxation"][name] = {
                "steps": n_steps, "max_force_eV_per_A": round(fmax, 5),
                "energy_eV_per_atom": round(float(r["trajectory"].energies[-1]) / len(f), 5),
                "volume_change": round(f.volume / prim.volume - 1.0, 4),
                **{f"{k}_lattice": {x: round(float(v), 4) for x, v in zip(
                    ("a", "b", "c", "alpha", "beta", "gamma"), c.lattice.parameters)} for k, c in conv.items()}}
            relaxed.append(f)
        lco, lsc = relaxed
    elif bulk_cells != "published":
        raise ValueError(f"bulk_cells must be 'published' or 'm3gnet', got {bulk_cells!r}")
    record["bulk"] = {"LiCoO2": lco.as_dict(), "Li3ScCl6": lsc.as_dict()}
    record.update(slabs_to_json(make_slabs(lco, lsc)))
    path = Path(path) if path is not None else RAW / "references.json"
    path.write_text(json.dumps(record, indent=None, sort_keys=True) + "\n")
    return path
