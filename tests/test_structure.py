"""The one structure representation: schema, exact conversions, file formats and the
errors hostile input gets."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from dismai_data.errors import StructureError
from dismai_data.io import (
    poscar_string,
    read_extxyz,
    read_jarvis_csv,
    read_structures,
    row_from_cif,
    row_from_poscar,
    cif_string,
    write_extxyz,
    write_jarvis_csv,
)
from dismai_data.schema import STRUCTURE_FEATURES, arrow_schema, crystal_system, features
from dismai_data.structure import (
    make_row,
    row_from_atoms,
    row_from_structure,
    row_to_atoms,
    row_to_structure,
    rows_to_table,
)

RNG = np.random.default_rng(0)


def _random_row(n=7, rid="r0"):
    lat = np.diag([4.1, 5.3, 6.2]) + RNG.normal(0, 0.4, (3, 3))
    frac = RNG.random((n, 3))
    species = list(RNG.choice(["Li", "Co", "O", "Sc", "Cl"], n))
    return make_row(species, frac, lat, rid)


def test_schema_features_round_trip():
    f = features({"tc": __import__("datasets").Value("float64")})
    assert list(f)[-1] == "tc"
    assert arrow_schema().equals(STRUCTURE_FEATURES.arrow_schema)
    from datasets import Features

    assert Features.from_arrow_schema(arrow_schema()) == STRUCTURE_FEATURES
    assert pa.types.is_fixed_size_list(arrow_schema().field("lattice").type)


def test_pymatgen_round_trip_is_bit_identical():
    for i in range(20):
        row = _random_row(rid=f"r{i}")
        s = row_to_structure(row)
        back = row_from_structure(s, row["id"])
        assert back == row
        assert np.array_equal(s.frac_coords, np.array(row["frac_coords"]))


def test_ase_round_trip_is_bit_identical():
    for i in range(20):
        row = _random_row(rid=f"r{i}")
        atoms = row_to_atoms(row)
        back = row_from_atoms(atoms)
        assert back["frac_coords"] == row["frac_coords"]
        assert back["lattice"] == row["lattice"]
        assert back == row


def test_ase_moved_atoms_are_not_reverted():
    row = _random_row()
    atoms = row_to_atoms(row)
    atoms.positions[0] += 0.1
    back = row_from_atoms(atoms)
    assert back["frac_coords"][0] != row["frac_coords"][0]
    np.testing.assert_allclose(np.array(back["frac_coords"][1:]), np.array(row["frac_coords"][1:]), atol=1e-12)


def test_derived_columns_agree_with_pymatgen():
    s = Structure(Lattice.cubic(4.2), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    row = row_from_structure(s, "nacl-cscl")
    assert row["spacegroup_number"] == SpacegroupAnalyzer(s).get_space_group_number() == 221
    assert row["crystal_system"] == "cubic"
    assert row["formula"] == "Na1 Cl1" and row["reduced_formula"] == "NaCl"
    assert math.isclose(row["density"], s.density)
    assert math.isclose(row["volume"], 4.2**3)
    assert (row["a"], row["alpha"]) == (4.2, 90.0)
    assert row["elements"] == ["Cl", "Na"] and row["nelements"] == 2 and row["num_atoms"] == 2
    assert row["atomic_numbers"] == [11, 17]


def test_crystal_system_boundaries():
    assert [crystal_system(n) for n in (1, 2, 3, 15, 16, 74, 75, 142, 143, 167, 168, 194, 195, 230)] == [
        "triclinic", "triclinic", "monoclinic", "monoclinic", "orthorhombic", "orthorhombic", "tetragonal",
        "tetragonal", "trigonal", "trigonal", "hexagonal", "hexagonal", "cubic", "cubic"]
    with pytest.raises(ValueError):
        crystal_system(231)


def test_poscar_round_trip_exact_and_jarvis_escaped():
    row = _random_row()
    text = poscar_string(row)
    assert row_from_poscar(text, row["id"]) == row
    escaped = text.replace("\n", "\\n")
    assert row_from_poscar(escaped, row["id"]) == row


def test_cif_round_trip_close():
    row = _random_row()
    back = row_from_cif(cif_string(row), row["id"])
    assert sorted(back["species"]) == sorted(row["species"])
    s1, s2 = row_to_structure(row), row_to_structure(back)
    np.testing.assert_allclose(s1.lattice.abc, s2.lattice.abc, atol=1e-6)
    # CIF reorders sites by species: compare site by site after pairing the nearest
    for site in s1:
        d = [s2.lattice.get_distance_and_image(site.frac_coords, o.frac_coords)[0] for o in s2
             if o.specie == site.specie]
        assert min(d) < 1e-6


def test_extxyz_round_trip(tmp_path):
    rows = [_random_row(rid=f"s{i}") for i in range(3)]
    for r in rows:
        r["energy"] = 1.5
    path = write_extxyz(rows, tmp_path / "a.extxyz", info_columns=["id", "energy"])
    back = read_extxyz(path)
    assert [r["id"] for r in back] == ["s0", "s1", "s2"]
    assert back[0]["energy"] == 1.5
    for a, b in zip(rows, back):
        assert a["species"] == b["species"]
        np.testing.assert_allclose(np.array(a["lattice"]), np.array(b["lattice"]), atol=1e-7)
        ca = np.array(a["frac_coords"]) @ np.array(a["lattice"])
        cb = np.array(b["frac_coords"]) @ np.array(b["lattice"])
        np.testing.assert_allclose(ca, cb, atol=1e-7)


def test_jarvis_csv_round_trip(tmp_path):
    targets = [_random_row(rid=f"JVASP-{i}") for i in range(4)]
    preds = [_random_row(rid=f"JVASP-{i}") for i in range(4)]
    path = write_jarvis_csv([(t["id"], t, p) for t, p in zip(targets, preds)], tmp_path / "p.csv")
    first = path.read_text().splitlines()[1]
    assert "\\n" in first  # escaped newlines, one record per line
    assert read_jarvis_csv(path) == preds
    assert read_jarvis_csv(path, column="target") == targets
    assert read_structures(path) == preds


def test_folder_of_poscar_and_cif(tmp_path):
    rows = [_random_row(rid=f"x{i}") for i in range(3)]
    (tmp_path / "x0.vasp").write_text(poscar_string(rows[0]))
    (tmp_path / "x1.vasp").write_text(poscar_string(rows[1]))
    got = read_structures(tmp_path)
    assert got == rows[:2]
    (tmp_path / "x2.cif").write_text(cif_string(rows[2]))
    got = read_structures(tmp_path)  # each file read by its own format
    assert [r["id"] for r in got] == ["x0", "x1", "x2"] and got[:2] == rows[:2]


def test_parquet_table_with_declared_schema(tmp_path):
    import pyarrow.parquet as pq

    rows = [_random_row(rid=f"p{i}") for i in range(5)]
    table = rows_to_table(rows)
    pq.write_table(table, tmp_path / "x.parquet")
    assert read_structures(tmp_path / "x.parquet") == rows


# ---------------------------------------------------------------- hostile input
GOOD_LAT = [[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]]


@pytest.mark.parametrize(
    "species,frac,lat,field,words",
    [
        (["Na"], [[0.0, float("nan"), 0.0]], GOOD_LAT, "frac_coords", "non-finite"),
        (["Na"], [[0.0, float("inf"), 0.0]], GOOD_LAT, "frac_coords", "non-finite"),
        (["Na"], [[0.0, 0.0]], GOOD_LAT, "frac_coords", "shape"),
        (["Na", "Cl"], [[0.0, 0.0, 0.0]], GOOD_LAT, "species", "2 sites"),
        (["Xx"], [[0.0, 0.0, 0.0]], GOOD_LAT, "species", "unknown element 'Xx'"),
        (["Na"], [[0.0, 0.0, 0.0]], [[1, 0, 0], [2, 0, 0], [0, 0, 1]], "lattice", "singular"),
        (["Na"], [[0.0, 0.0, 0.0]], [[1, 0, 0], [0, 1, 0]], "lattice", "shape"),
        (["Na"], [[0.0, 0.0, 0.0]], [[1, 0, 0], [0, float("nan"), 0], [0, 0, 1]], "lattice", "non-finite"),
        ([], np.zeros((0, 3)), GOOD_LAT, "frac_coords", "empty"),
        ("NaCl", [[0.0, 0.0, 0.0]], GOOD_LAT, "species", "not one string"),
    ],
)
def test_hostile_rows_name_row_and_field(species, frac, lat, field, words):
    with pytest.raises(StructureError) as err:
        make_row(species, frac, lat, "bad-row", index=3)
    msg = str(err.value)
    assert err.value.field == field
    assert "bad-row" in msg and "index 3" in msg and f"'{field}'" in msg and words in msg


def test_hostile_row_mapping():
    with pytest.raises(StructureError, match="field 'lattice': missing column"):
        row_to_structure({"id": "q", "species": ["Na"], "frac_coords": [[0, 0, 0]]})
    with pytest.raises(StructureError, match="atomic number 12 does not match species 'Na'"):
        row_to_structure({"id": "q", "species": ["Na"], "atomic_numbers": [12], "frac_coords": [[0, 0, 0]],
                          "lattice": GOOD_LAT})
    with pytest.raises(StructureError, match="field 'id'"):
        make_row(["Na"], [[0, 0, 0]], GOOD_LAT, "")
    with pytest.raises(StructureError, match="field 'tc': is NaN"):
        make_row(["Na"], [[0, 0, 0]], GOOD_LAT, "q", {"tc": float("nan")})


def test_hostile_files(tmp_path):
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    with pytest.raises(StructureError, match=r"file .*empty.extxyz.*is empty"):
        read_structures(empty)
    with pytest.raises(StructureError, match="does not exist"):
        read_structures(tmp_path / "missing.cif")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,target\nA,x\n")
    with pytest.raises(StructureError, match=r"bad.csv.*field 'prediction': missing column"):
        read_jarvis_csv(bad)
    dup = tmp_path / "dup.csv"
    row = _random_row()
    p = poscar_string(row).replace("\n", "\\n")
    dup.write_text(f"id,target,prediction\nA,{p},{p}\nA,{p},{p}\n")
    with pytest.raises(StructureError, match=r"row 'A' \(index 1\), field 'id': duplicate id"):
        read_jarvis_csv(dup)
    garbage = tmp_path / "g.csv"
    garbage.write_text("id,target,prediction\nB,x,not a poscar\n")
    with pytest.raises(StructureError, match=r"g.csv, row 'B' \(index 0\), field 'poscar': cannot parse POSCAR"):
        read_jarvis_csv(garbage)
    xyz = tmp_path / "nan.extxyz"
    xyz.write_text('1\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="T T T"\nNa nan 0 0\n')
    with pytest.raises(StructureError, match=r"nan.extxyz, row 'nan-0' \(index 0\)"):
        read_extxyz(xyz)
    unknown = tmp_path / "POSCAR"
    unknown.write_text("x\n1.0\n4 0 0\n0 4 0\n0 0 4\nQq\n1\ndirect\n0 0 0\n")
    with pytest.raises(StructureError, match="POSCAR"):
        read_structures(unknown)
