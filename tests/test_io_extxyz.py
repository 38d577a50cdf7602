"""The one extxyz reader (dismai_data.io.iter_extxyz): read_extxyz raises at the first
bad frame, naming file, frame and field; the evaluation keeps the bad frame as one failed
row and scores the others. Frames that cannot be cut apart are file-level errors in both."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

os.environ.setdefault("DISMAI_NO_PROGRESS", "1")

from dismai_data.errors import StructureError  # noqa: E402
from dismai_data.evaluation import evaluate  # noqa: E402
from dismai_data.evaluation.sources import EvaluationInputError, read_predictions  # noqa: E402
from dismai_data.io import iter_extxyz, read_extxyz, row_from_poscar, write_extxyz  # noqa: E402
from dismai_data.structure import rows_to_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JARVIS_ZIP = ROOT / "builders" / "raw" / "jarvis_supercon_3d" / "jarvis_leaderboard_atomgen_split.json.zip"
N_TEST = 5
HEAD = 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="T T T"'
GOOD = f"1\n{HEAD}\nNa 0 0 0\n"


@pytest.fixture(scope="module")
def jarvis(tmp_path_factory):
    """A few real test-split rows and a reference folder (layout of `dismai build`) holding them."""
    with zipfile.ZipFile(JARVIS_ZIP) as z:
        d = json.loads(z.read(z.namelist()[0]))
    splits = {"test": sorted(d["test"].items())[:N_TEST], "train": sorted(d["train"].items())[:10]}
    rows = {split: [row_from_poscar(p, i) for i, p in items] for split, items in splits.items()}
    root = tmp_path_factory.mktemp("ref") / "jarvis-supercon-3d"
    (root / "data").mkdir(parents=True)
    for split, rs in rows.items():
        pq.write_table(rows_to_table(rs), root / "data" / f"{split}-00000-of-00001.parquet")
    (root / "build_info.json").write_text(json.dumps({"name": "jarvis-supercon-3d", "version": "1.0.0"}))
    return rows["test"], root


def _with_unknown_element(path: Path, frame: int, symbol: str = "Xx") -> int:
    """Replace the element of the first atom of ``frame`` by ``symbol``; return that line number."""
    lines = path.read_text().split("\n")
    pos = 0
    for _ in range(frame):
        pos += 2 + int(lines[pos])
    first_atom = pos + 2
    parts = lines[first_atom].split(maxsplit=1)
    lines[first_atom] = f"{symbol} {parts[1]}"
    path.write_text("\n".join(lines))
    return first_atom + 1


def test_bad_frame_raises_in_read_extxyz_and_fails_one_row_in_evaluation(jarvis, tmp_path):
    test, reference = jarvis
    path = write_extxyz(test, tmp_path / "preds.extxyz", info_columns=["id"])
    _with_unknown_element(path, 2)
    bad_id = test[2]["id"]

    # read_extxyz: the first bad frame raises, naming the file, the frame (id and index) and the field
    with pytest.raises(StructureError, match=rf"preds.extxyz, row '{bad_id}' \(index 2\), field 'species': "
                                             r"site 0: unknown element 'Xx'") as info:
        read_extxyz(path)
    assert info.value.index == 2 and info.value.row == bad_id and info.value.field == "species"

    # the iterator: every frame, the bad one as its error
    out = list(iter_extxyz(path))
    assert [(i, rid) for i, rid, _ in out] == [(i, r["id"]) for i, r in enumerate(test)]
    assert [isinstance(r, StructureError) for _, _, r in out] == [False, False, True, False, False]
    assert all(out[i][2]["id"] == test[i]["id"] for i in (0, 1, 3, 4))

    # the evaluation source: one failed row with the reason, the other frames accepted
    ps = read_predictions(path)
    assert [it.ok for it in ps.items] == [True, True, False, True, True]
    assert ps.items[2].id == bad_id and ps.items[2].reason == "species: site 0: unknown element 'Xx'"

    # and scored: the good frames match, the bad one counts as unmatched
    res = evaluate("jarvis-supercon-3d", str(path), reference=str(reference), out=str(tmp_path / "out"),
                   generic=False)
    assert res.counts.failed == 1 and res.counts.accepted == N_TEST - 1
    assert res.metrics["match_rate"].value == pytest.approx((N_TEST - 1) / N_TEST)
    assert res.metrics["mae_a"].n == N_TEST - 1 and res.metrics["mae_a"].value < 1e-6
    import pandas as pd

    t = pd.read_csv(tmp_path / "out" / "rows.csv").set_index("id")
    assert t.loc[bad_id, "status"] == "failed" and "unknown element 'Xx'" in t.loc[bad_id, "reason"]
    assert (t.drop(index=bad_id).status == "accepted").all()


@pytest.mark.parametrize("frame, field, reason", [
    (f"1\n{HEAD}\nNa nan 0 0\n", "positions", "contains a non-finite position"),
    (f"1\n{HEAD}\nQq 0 0 0\n", "species", "site 0: unknown element 'Qq'"),
    (f"1\n{HEAD}\nX 0 0 0\n", "species", "site 0: unknown element 'X'"),  # ASE's dummy atom: not an element
    (f"1\n{HEAD}\nNa x 0 0\n", "frame", "cannot parse the frame at lines 4-6 (ValueError"),
    (f"1\n{HEAD}\nNa 0 0\n", "frame", "cannot parse the frame at lines 4-6"),
    ("1\nProperties=species:S:1:pos:R:3\nNa 0 0 0\n", "lattice", "cell has rank 0"),
    (f"0\n{HEAD}\n", "frac_coords", "is empty"),
])
def test_each_bad_frame_is_its_own_error(tmp_path, frame, field, reason):
    path = tmp_path / "m.extxyz"
    path.write_text(GOOD + frame + GOOD)
    out = list(iter_extxyz(path, symmetry=False))
    assert [rid for _, rid, _ in out] == ["m-0", "m-1", "m-2"]
    err = out[1][2]
    assert isinstance(err, StructureError) and not isinstance(out[0][2], StructureError)
    assert (err.source, err.row, err.index, err.field) == (str(path), "m-1", 1, field)
    assert err.reason.startswith(reason)
    with pytest.raises(StructureError, match=rf"m.extxyz, row 'm-1' \(index 1\), field '{field}'"):
        read_extxyz(path, symmetry=False)
    items = read_predictions(path, symmetry=False).items
    assert [it.ok for it in items] == [True, False, True] and items[1].reason == f"{field}: {err.reason}"


def test_ids_and_info_columns(tmp_path):
    path = tmp_path / "ids.extxyz"
    path.write_text(GOOD.replace('pbc="T T T"', 'pbc="T T T" id=first energy=-1.5 tag=7')
                    + f"1\n{HEAD} id=second energy=nan\nQq 0 0 0\n"
                    + f"1\n{HEAD} energy=nan\nNa 0 0 0\n")
    # dataset reading maps scalar info (and ASE's calculator results) to extra columns
    out = list(iter_extxyz(path, symmetry=False))
    assert out[0][2]["id"] == "first" and out[0][2]["energy"] == -1.5 and out[0][2]["tag"] == 7.0
    assert out[1][1] == "second" and out[1][2].row == "second"  # id from the comment line of an unparsable frame
    assert isinstance(out[2][2], StructureError) and out[2][2].field == "energy" and out[2][1] == "ids-2"
    # a prediction is its structure: info keys are not read, so a NaN energy does not fail it
    items = read_predictions(path, symmetry=False).items
    assert [(it.id, it.ok) for it in items] == [("first", True), ("second", False), ("ids-2", True)]
    assert "energy" not in items[0].row


@pytest.mark.parametrize("text, message", [
    (GOOD + f"2\n{HEAD}\nNa 0 0 0\n" + GOOD, r"frame 2, line 8: expected the number of atoms.*frame 1, line 4"),
    (GOOD + f"1\n{HEAD}\nNa 0 0 0\nNa 1 1 1\n" + GOOD,
     r"frame 2, line 7: expected the number of atoms, got 'Na 1 1 1'"),
    (GOOD + f"3\n{HEAD}\nNa 0 0 0\n", r"frame 1, line 4: says 3 atoms but the file ends after 1 atom lines"),
    (GOOD + "\n" + GOOD, r"frame 1, line 4 is blank but line 5 holds more text"),
    ("  \n\n", r"holds no frames"),
])
def test_frames_that_cannot_be_cut_apart_are_file_level(tmp_path, text, message):
    path = tmp_path / "w.extxyz"
    path.write_text(text)
    with pytest.raises(StructureError, match=rf"file .*w.extxyz, field 'file': .*{message}"):
        read_extxyz(path, symmetry=False)
    with pytest.raises(EvaluationInputError, match=rf"file .*w.extxyz, field 'file': .*{message}"):
        read_predictions(path, symmetry=False)


def test_trailing_blank_lines_and_empty_file(tmp_path):
    path = tmp_path / "t.extxyz"
    path.write_text(GOOD + GOOD + "\n \n")
    assert [r["id"] for r in read_extxyz(path, symmetry=False)] == ["t-0", "t-1"]
    empty = tmp_path / "e.extxyz"
    empty.write_text("")
    with pytest.raises(StructureError, match=r"e.extxyz, field 'file': is empty"):
        read_extxyz(empty)
    with pytest.raises(EvaluationInputError, match=r"e.extxyz, field 'file': is empty"):
        read_predictions(empty)
