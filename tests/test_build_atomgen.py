import json
import zipfile

import pytest

from dismai_data.raw import raw_dir

from builders_helpers import build_to, check_layout_and_features

CASES = {
    "perov-5": ("perov5/perov5_atomgen_split.json.zip", {"train": 11356, "validation": 3787, "test": 3785}),
    "carbon-24": ("carbon24/carbon24_atomgen_split.json.zip", {"train": 6091, "validation": 2032, "test": 2030}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_build(name, tmp_path_factory):
    raw, expected = CASES[name]
    b, out = build_to(tmp_path_factory, name)
    check_layout_and_features(b, out, expected)
    with zipfile.ZipFile(raw_dir() / raw) as z:
        data = json.loads(z.read(z.namelist()[0]))
    for ours, theirs in (("train", "train"), ("validation", "val"), ("test", "test")):
        assert [r["id"] for r in b.configs["default"][ours]] == list(data[theirs])
    # a known row: the first test POSCAR, lattice and coordinates exactly as written
    rid, poscar = next(iter(data["test"].items()))
    lines = poscar.split("\\n") if "\\n" in poscar else poscar.splitlines()
    row = b.configs["default"]["test"][0]
    assert row["id"] == rid
    assert row["lattice"][0] == [float(x) for x in lines[2].split()]
    assert row["frac_coords"][0] == [float(x) for x in lines[8].split()]
    if name == "carbon-24":
        assert {e for r in b.configs["default"]["train"] for e in r["elements"]} == {"C"}
    else:
        assert {r["num_atoms"] for r in b.configs["default"]["train"]} == {5}
