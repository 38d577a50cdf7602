import gzip
import json

import pytest

from dismai_data.builders import alexandria
from dismai_data.raw import raw_dir

from builders_helpers import build_to, check_layout_and_features


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_to(tmp_path_factory, "alexandria-ds-ab")


def test_counts_and_split(built):
    b, out = built
    ds = check_layout_and_features(b, out, {"train": 6603, "validation": 825, "test": 825})
    assert sum(ds[s].num_rows for s in ds) == 8253
    subsets = [r["subset"] for rows in b.configs["default"].values() for r in rows]
    assert subsets.count("DS-A") == 7220 and subsets.count("DS-B") == 1033


def test_frozen_split_is_the_seeded_split():
    ids = [r["mat_id"] for r in alexandria.read_records()]
    assert alexandria.frozen_split() == alexandria.make_split(ids, seed=7)
    assert alexandria.make_split(ids, seed=8) != alexandria.frozen_split()


def test_known_rows_against_raw(built):
    b, _ = built
    rows = {r["id"]: r for split in b.configs["default"].values() for r in split}
    with gzip.open(raw_dir() / "alexandria_ds_ab/DS-B.jsonl.gz", "rt") as fh:
        recs = [json.loads(next(fh)) for _ in range(3)]
    for rec in recs:
        row = rows[rec["mat_id"]]
        assert row["subset"] == "DS-B"
        assert (row["tc"], row["lambda"], row["omega_log"], row["debye_temperature"], row["dos_fermi"]) == (
            rec["Tc"], rec["la"], rec["wlog"], rec["debye"], rec["dosef"])
        assert row["lattice"] == rec["structure"]["lattice"]["matrix"]
        assert row["frac_coords"] == [site["abc"] for site in rec["structure"]["sites"]]
        assert row["species"] == [site["species"][0]["element"] for site in rec["structure"]["sites"]]


def test_card(built):
    _, out = built
    card = (out / "README.md").read_text()
    assert "numpy.random.default_rng(7)" in card and "cc-by-4.0" in card
    assert "88096d0fa8d279c3ad7aa98dceab204fb5c6ab3be67e61bda8054dbf1237f6a0" in card
