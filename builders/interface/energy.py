"""Interface energy (J/m^2) from bulk and slab references relaxed with the same potential."""

from __future__ import annotations

import numpy as np

from dismai_data.builders.interface.candidates import VACUUM
from dismai_data.builders.interface.lateral import lateral_frac
from dismai_data.builders.interface.references import references


EV_PER_A2_TO_J_PER_M2 = 1.602176634e-19 / 1e-20


def reference_structures() -> dict:
    """Bulk cells and isolated slabs (14 Å vacuum) whose relaxed energies define the interface
    energy; ids are the relax_many keys."""
    from pymatgen.core import Lattice, Structure

    refs = references()
    lat2 = refs["lateral"]
    out = {}
    for name, key in (("LiCoO2", "lco"), ("Li3ScCl6", "lsc")):
        out[f"ref-{key}-bulk"] = Structure.from_dict(refs["bulk"][name])
        part = refs[key]
        cart = part["cart"] - [0, 0, part["cart"][:, 2].min()]
        c = float(cart[:, 2].max()) + VACUUM
        lat = Lattice(np.array([lat2[0], lat2[1], [0.0, 0.0, c]]))
        # fractional coordinates without BLAS, as in generate(): the same bits on every CPU
        out[f"ref-{key}-slab"] = Structure(lat, list(part["species"]), lateral_frac(cart, lat2, c))
    return out


def _fu(structure, formula: str) -> float:
    from pymatgen.core import Composition

    comp = structure.composition
    ref = Composition(formula)
    n = comp.get_el_amt_dict()
    return n[ref.elements[0].symbol] / ref.get_el_amt_dict()[ref.elements[0].symbol]


def interface_energy_terms(ref_energies: dict, area: float) -> dict:
    """Constant part of gamma: E_LCO_slab/2 + 18 e_LCO + E_LSC_slab/2 + 7.5 e_LSC (eV), from the
    relaxed reference energies (ids of :func:`reference_structures`)."""
    structs = reference_structures()
    e_lco = ref_energies["ref-lco-bulk"] / _fu(structs["ref-lco-bulk"], "LiCoO2")
    e_lsc = ref_energies["ref-lsc-bulk"] / _fu(structs["ref-lsc-bulk"], "Li3ScCl6")
    n_lco_slab = _fu(structs["ref-lco-slab"], "LiCoO2")  # 36
    n_lsc_slab = _fu(structs["ref-lsc-slab"], "Li3ScCl6")  # 9
    sigma_lco = (ref_energies["ref-lco-slab"] - n_lco_slab * e_lco) / (2 * area)
    sigma_lsc = (ref_energies["ref-lsc-slab"] - n_lsc_slab * e_lsc) / (2 * area)
    return {"e_lco_fu": e_lco, "e_lsc_fu": e_lsc, "sigma_lco_jm2": sigma_lco * EV_PER_A2_TO_J_PER_M2,
            "sigma_lsc_jm2": sigma_lsc * EV_PER_A2_TO_J_PER_M2, "area_A2": area,
            "constant_eV": 36 * e_lco + 12 * e_lsc + (sigma_lco + sigma_lsc) * area}


def gamma_jm2(energy: float, terms: dict) -> float:
    """Interface energy (J/m^2) of a relaxed 264-atom interface of total energy ``energy`` (eV)."""
    return (energy - terms["constant_eV"]) / terms["area_A2"] * EV_PER_A2_TO_J_PER_M2
