import csv
import json
import sys
import zipfile

import numpy as np
import pytest

from dismai_data.builders.write import write_dataset
from dismai_data.builders import run_builder
from dismai_data.raw import raw_dir
from dismai_data.structure import row_to_structure

from builders_helpers import build_to, check_layout_and_features

EXPECTED = {"train": 846, "validation": 105, "test": 105}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_to(tmp_path_factory, "jarvis-supercon-3d")


def test_counts_splits_features(built):
    b, out = built
    ds = check_layout_and_features(b, out, EXPECTED)
    assert sum(ds[s].num_rows for s in ds) == 1056
    assert (out / "figures/property.png").exists()


def test_splits_equal_leaderboard_split(built):
    b, _ = built
    with zipfile.ZipFile(raw_dir() / "jarvis_supercon_3d/jarvis_leaderboard_atomgen_split.json.zip") as z:
        lb = json.loads(z.read("dft_3d_Tc_supercon.json"))
    for ours, theirs in (("train", "train"), ("validation", "val"), ("test", "test")):
        assert [r["id"] for r in b.configs["default"][ours]] == list(lb[theirs])


def test_known_rows_against_raw_csv(built):
    b, _ = built
    csv.field_size_limit(sys.maxsize)
    rows = {r["id"]: r for split in b.configs["default"].values() for r in split}
    with open(raw_dir() / "jarvis_supercon_3d/test.csv", newline="") as fh:
        recs = list(csv.DictReader(fh))
    for rec in recs[:5] + recs[-2:]:
        row = rows[rec["material_id"]]
        assert row["tc"] == -float(rec["prop"]) + 0.0
        assert row["tc"] >= 0
    # JVASP-68993 (first test POSCAR of the leaderboard file): Ba2LiSn, fcc lattice vectors as written
    r = rows["JVASP-68993"]
    assert r["formula"] == "Ba2 Li1 Sn1" and r["spacegroup_number"] == 225
    assert r["lattice"][0] == [5.117789507827414, 0.0, 2.9547571500000003]
    assert r["frac_coords"][1] == [0.74999958, 0.74999958, 0.74999958]
    tcs = np.array([r["tc"] for r in rows.values()])
    assert tcs.min() == 0.0 and abs(tcs.max() - 33.47) < 0.01


def test_card_says_where_it_came_from(built):
    _, out = built
    card = (out / "README.md").read_text()
    for needle in ("dcbe3bfedf21a66dd8b4c02589659f1ba6e25bf0fd1e805e358f02a4c2c6b615",
                   "builder `jarvis-supercon-3d` version 1.0.0",
                   "usnistgov/jarvis_leaderboard", "all 1056 CSV CIFs match their leaderboard POSCARs", "-Tc"):
        assert needle in card


def test_build_is_byte_identical(built, tmp_path):
    _, out = built
    again = write_dataset(run_builder("jarvis-supercon-3d", check_structures=False), tmp_path / "again",
                          figures=False)
    for f in sorted((out / "data").glob("*.parquet")):
        assert f.read_bytes() == (again / "data" / f.name).read_bytes(), f.name


def test_structures_convert(built):
    b, _ = built
    row = b.configs["default"]["train"][0]
    s = row_to_structure(row)
    assert len(s) == row["num_atoms"] and s.composition.formula == row["formula"]
