"""What the relaxation engine accepts: structures or (id, structure) pairs, checked with errors
that name the item (:class:`RelaxInputError`), and the hash that ties a result to its input."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np


class RelaxInputError(ValueError):
    """An item given to the relaxation engine is invalid; the message names the item."""


def as_items(items, *, caller: str) -> list[tuple[str, Any]]:
    """(id, Structure) pairs, checked: a list, not empty, Structures, ordered, finite,
    unique ids. Bare Structures take ``structure.properties['id']`` or their index."""
    from pymatgen.core import Structure

    if items is None or isinstance(items, (str, bytes)):
        raise RelaxInputError(f"{caller}: items must be a list of Structures or (id, Structure) pairs")
    if isinstance(items, Structure):
        items = [items]
    items = list(items)
    if not items:
        raise RelaxInputError(f"{caller}: no structures given (empty list)")
    out: list[tuple[str, Any]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        key, s = _id_and_structure(item, i, caller)
        where = f"{caller}: item {i} (id {key!r})"
        if key in seen:
            raise RelaxInputError(f"{where}: id repeated (also item {seen[key]})")
        seen[key] = i
        _check_structure(s, where)
        out.append((key, s))
    return out


def _id_and_structure(item, i: int, caller: str) -> tuple[str, Any]:
    from pymatgen.core import Structure

    if isinstance(item, Structure):
        key = item.properties.get("id")
        return (str(i) if key is None else str(key)), item
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], Structure):
        key = str(item[0])
        if item[0] is None or key == "":
            raise RelaxInputError(f"{caller}: item {i}: empty id")
        return key, item[1]
    raise RelaxInputError(f"{caller}: item {i} is a {type(item).__name__}, "
                          "not a pymatgen Structure or an (id, Structure) pair")


def _check_structure(s, where: str) -> None:
    if len(s) == 0:
        raise RelaxInputError(f"{where}: structure has no sites")
    if not s.is_ordered:
        raise RelaxInputError(f"{where}: disordered sites (partial occupancy) cannot be relaxed")
    lat = np.asarray(s.lattice.matrix, dtype=float)
    frac = np.asarray(s.frac_coords, dtype=float)
    if not np.all(np.isfinite(lat)):
        raise RelaxInputError(f"{where}: lattice has a non-finite value")
    if not np.all(np.isfinite(frac)):
        bad = int(np.argwhere(~np.isfinite(frac))[0][0])
        raise RelaxInputError(f"{where}: site {bad} has a non-finite coordinate")
    if abs(np.linalg.det(lat)) < 1e-8:
        raise RelaxInputError(f"{where}: lattice is singular")


def check_elements(pairs: Sequence[tuple[str, Any]], element_types: Sequence[str], caller: str) -> None:
    """Refuse an item with an element the potential does not cover, naming it."""
    known = set(element_types)
    for i, (key, s) in enumerate(pairs):
        for el in s.composition.elements:
            if el.symbol not in known:
                raise RelaxInputError(f"{caller}: item {i} (id {key!r}): element {el.symbol} is not "
                                      "covered by the potential")


def input_hash(structure) -> str:
    """sha256 of a structure's species, fractional coordinates and lattice (float64 bytes):
    identifies the input a checkpointed result belongs to."""
    h = hashlib.sha256()
    h.update("\0".join(site.specie.symbol for site in structure).encode())
    h.update(np.ascontiguousarray(structure.frac_coords, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(structure.lattice.matrix, dtype="<f8").tobytes())
    return h.hexdigest()
