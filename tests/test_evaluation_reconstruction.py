"""Reconstruction tasks: self-scores, worse scores for perturbed/shuffled predictions,
input formats, hostile input (file-level errors, row-level failures), statistics."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("DISMAI_NO_PROGRESS", "1")

from dismai_data.evaluation import evaluate  # noqa: E402
from dismai_data.evaluation.sources import EvaluationInputError  # noqa: E402
from dismai_data.evaluation.stats import bootstrap_mean, histogram_edges, kld, pivotal_errors  # noqa: E402
from dismai_data.io import row_from_poscar, write_jarvis_csv  # noqa: E402
from dismai_data.structure import make_row, rows_to_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JARVIS_ZIP = ROOT / "builders" / "raw" / "jarvis_supercon_3d" / "jarvis_leaderboard_atomgen_split.json.zip"
N_TEST, N_TRAIN = 24, 60


@pytest.fixture(scope="session")
def jarvis_rows():
    with zipfile.ZipFile(JARVIS_ZIP) as z:
        d = json.loads(z.read(z.namelist()[0]))
    out = {}
    for split, n in (("test", N_TEST), ("train", N_TRAIN)):
        items = sorted(d[split].items())[:n]
        out[split] = [row_from_poscar(p, i) for i, p in items]
    return out


@pytest.fixture(scope="session")
def reference(tmp_path_factory, jarvis_rows):
    """A reference folder in the layout of `dismai build` (subset of the real split)."""
    root = tmp_path_factory.mktemp("ref") / "jarvis-supercon-3d"
    (root / "data").mkdir(parents=True)
    for split, rows in jarvis_rows.items():
        pq.write_table(rows_to_table(rows), root / "data" / f"{split}-00000-of-00001.parquet")
    (root / "build_info.json").write_text(json.dumps({"name": "jarvis-supercon-3d", "version": "1.0.0"}))
    return root


def _write(rows, path):
    pq.write_table(rows_to_table(rows), path)
    return path


def _raw_table(records, path):
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def _perturb(row, scale=1.08, noise=0.04, seed=0):
    rng = np.random.default_rng(seed)
    frac = (np.asarray(row["frac_coords"]) + rng.normal(0, noise, (row["num_atoms"], 3))) % 1.0
    lat = np.asarray(row["lattice"]) * scale
    return make_row(row["species"], frac, lat, row["id"])


def _run(ref, preds, tmp_path, **kw):
    return evaluate("jarvis-supercon-3d", str(preds), reference=str(ref), out=str(tmp_path / "out"),
                    generic=kw.pop("generic", False), **kw)


def test_self_score_is_perfect(reference, jarvis_rows, tmp_path):
    preds = _write(jarvis_rows["test"], tmp_path / "self.parquet")
    r = _run(reference, preds, tmp_path, generic=True)
    m = r.metrics
    assert m["match_rate"].value == 1.0
    assert m["rmse"].value < 1e-6 and m["atomgen_score"].value < 1e-6
    for p in ("a", "b", "c", "alpha", "beta", "gamma"):
        assert m[f"mae_{p}"].value == 0.0
        assert m[f"kld_{p}"].value == 0.0
    assert r.counts.accepted == N_TEST and r.counts.percent_failed == 0.0
    assert m["coverage_recall"].value == 1.0 and m["coverage_precision"].value == 1.0
    # the result JSON, the per-row table and the figure exist and round-trip
    out = tmp_path / "out"
    again = type(r).from_json(out / "result.json")
    assert again.metrics["match_rate"].value == 1.0 and again.evaluation_version == r.evaluation_version
    assert again.reference.id == "jarvis-supercon-3d" and again.reference.revision == "v1.0.0"
    import pandas as pd

    table = pd.read_parquet(out / "rows.parquet")
    assert len(table) == N_TEST and set(table.status) == {"accepted"}
    assert (out / "figures" / "lattice_parameters.png").stat().st_size > 1000
    assert r.relaxed is False and "settings" in json.loads((out / "result.json").read_text())
    assert r.settings["kld_histogram"]["bins"] == 50 and r.settings["kld_histogram"]["epsilon"] == 1e-10
    for p in ("a", "b", "c", "alpha", "beta", "gamma"):
        assert m[f"kld_histogram_{p}"].value == 0.0
    assert m["atombench_match_rate"].value == 1.0 and m["atombench_rmse"].value < 1e-6
    assert m["wrong_composition_fraction"].value == 0.0 and m["atomgen_pair_rate"].value == 1.0


def test_perturbed_and_shuffled_score_worse(reference, jarvis_rows, tmp_path):
    test = jarvis_rows["test"][:12]  # the other 12 ids are missing: failed and unmatched
    pert = [_perturb(r, seed=i) for i, r in enumerate(test)]
    rp = _run(reference, _write(pert, tmp_path / "pert.parquet"), tmp_path / "p")
    for p in ("a", "b", "c"):
        assert rp.metrics[f"mae_{p}"].value > 0.05
    assert rp.metrics["rmse"].value is None or rp.metrics["rmse"].value > 1e-3
    big = [_perturb(r, scale=1.0, noise=0.25, seed=i) for i, r in enumerate(test[:6])]
    rb = _run(reference, _write(big, tmp_path / "big.parquet"), tmp_path / "b")
    assert rb.metrics["match_rate"].value < 6 / N_TEST
    assert rp.counts.failed == N_TEST - 12 and rp.metrics["match_rate"].value <= 12 / N_TEST
    # shuffled: every prediction under another row's id
    ids = [r["id"] for r in test]
    shuffled = [make_row(r["species"], r["frac_coords"], r["lattice"], ids[(i + 1) % len(ids)])
                for i, r in enumerate(test)]
    rs = _run(reference, _write(shuffled, tmp_path / "shuf.parquet"), tmp_path / "s")
    assert rs.metrics["match_rate"].value < 0.25
    assert rs.counts.failed > 0  # wrong compositions for their ids
    # a randomised lattice distribution: a large histogram KLD (the paper's text); the paired
    # entropy of AtomBench's code is small (it compares per-material vectors normalised to sum 1)
    rng = np.random.default_rng(3)
    rand = [make_row(r["species"], r["frac_coords"], np.asarray(r["lattice"]) * rng.uniform(0.7, 1.6), r["id"])
            for r in test]
    rr = _run(reference, _write(rand, tmp_path / "rand.parquet"), tmp_path / "r")
    assert rr.metrics["kld_histogram_a"].value > 0.5 and rr.metrics["mae_a"].value > 0.2
    assert 0.005 < rr.metrics["kld_a"].value < 0.1 and rr.metrics["kld_a"].n == 12


def test_jarvis_csv_equals_parquet(reference, jarvis_rows, tmp_path):
    test = jarvis_rows["test"][:10]
    pert = [_perturb(r, seed=i) for i, r in enumerate(test)]
    csv_path = write_jarvis_csv([(p["id"], t, p) for t, p in zip(test, pert)], tmp_path / "AI-AtomGen.csv")
    a = _run(reference, csv_path, tmp_path / "csv")
    b = _run(reference, _write(pert, tmp_path / "pert.parquet"), tmp_path / "pq")
    for k in a.metrics:
        assert a.metrics[k].value == pytest.approx(b.metrics[k].value, abs=1e-9), k
    # the target column of the same CSV is a perfect reconstruction
    t = evaluate("jarvis-supercon-3d", str(csv_path), column="target", reference=str(reference), generic=False)
    assert t.metrics["match_rate"].value == 10 / N_TEST and t.metrics["mae_a"].value == 0.0


def _record(row, **override):
    rec = {"id": row["id"], "species": list(row["species"]), "frac_coords": [list(x) for x in row["frac_coords"]],
           "lattice": [list(x) for x in row["lattice"]]}
    rec.update(override)
    return rec


def test_row_level_failures_have_reasons(reference, jarvis_rows, tmp_path):
    test = jarvis_rows["test"]
    recs = [_record(r) for r in test]
    nan = [list(x) for x in test[0]["frac_coords"]]
    nan[0][1] = float("nan")
    recs[0]["frac_coords"] = nan
    inf_lat = [list(x) for x in test[1]["lattice"]]
    inf_lat[2][2] = float("inf")
    recs[1]["lattice"] = inf_lat
    recs[2]["species"] = ["Xx"] + list(test[2]["species"][1:])
    recs[3]["lattice"] = [[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]  # singular
    recs[4]["lattice"] = [[1e5, 0, 0], [0, 1e5, 0], [0, 0, 1e5]]  # absurd
    r5 = test[5]
    recs[5]["species"] = list(r5["species"]) + [r5["species"][0]]
    recs[5]["frac_coords"] = [list(x) for x in r5["frac_coords"]] + [[0.123, 0.456, 0.789]]  # wrong count
    r6 = test[6]
    recs[6]["species"] = ["Fe" if s != "Fe" else "Co" for s in r6["species"]]  # wrong composition
    del recs[7]  # missing id
    path = _raw_table(recs, tmp_path / "hostile.parquet")
    res = _run(reference, path, tmp_path)
    import pandas as pd

    t = pd.read_csv(tmp_path / "out" / "rows.csv").set_index("id")
    reasons = {test[i]["id"]: t.loc[test[i]["id"], "reason"] for i in range(8)}
    assert "frac_coords" in reasons[test[0]["id"]] and "non-finite" in reasons[test[0]["id"]]
    assert "lattice" in reasons[test[1]["id"]]
    assert "unknown element" in reasons[test[2]["id"]]
    assert "singular" in reasons[test[3]["id"]]
    assert "volume per atom" in reasons[test[4]["id"]] or "long" in reasons[test[4]["id"]]
    assert "atom count" in reasons[test[5]["id"]]
    assert "composition" in reasons[test[6]["id"]]
    assert "missing" in reasons[test[7]["id"]]
    assert all(t.loc[test[i]["id"], "status"] == "failed" for i in range(8))
    assert res.counts.failed == 8 and res.counts.accepted == N_TEST - 8
    assert res.counts.percent_failed == pytest.approx(100 * 8 / N_TEST)
    # failed rows count as unmatched; accepted ones are perfect
    assert res.metrics["match_rate"].value == pytest.approx((N_TEST - 8) / N_TEST)
    # AtomBench and AtomGen use every parsed pair: the absurd cell (4), the wrong count (5) and the wrong
    # composition (6) parse; rows 5 and 6 have the wrong composition
    assert res.metrics["mae_a"].n == N_TEST - 5 and res.metrics["mae_a"].value > 1000
    assert res.metrics["wrong_composition_fraction"].value == pytest.approx(2 / N_TEST)
    assert res.metrics["atomgen_pair_rate"].value >= (N_TEST - 8) / N_TEST


@pytest.mark.parametrize("case", ["duplicate", "empty", "missing_column", "unknown_ids", "wrong_task",
                                  "no_file", "empty_csv_column", "garbage"])
def test_file_level_errors_name_file_and_field(case, reference, jarvis_rows, tmp_path):
    test = jarvis_rows["test"]
    task = "jarvis-supercon-3d"
    if case == "duplicate":
        path = _write(test[:3] + test[:1], tmp_path / "dup.parquet")
        field = "'id'"
    elif case == "empty":
        path = tmp_path / "empty.parquet"
        path.write_bytes(b"")
        field = "'file'"
    elif case == "missing_column":
        path = _raw_table([{"id": r["id"], "species": list(r["species"])} for r in test], tmp_path / "nocol.parquet")
        field = "'frac_coords'"
    elif case == "unknown_ids":
        path = _write([make_row(r["species"], r["frac_coords"], r["lattice"], "X" + r["id"]) for r in test],
                      tmp_path / "ids.parquet")
        field = "'id'"
    elif case == "wrong_task":
        path = _write(test, tmp_path / "ok.parquet")
        task = "mp-20"
        field = "'task'"
    elif case == "no_file":
        path = tmp_path / "nope.parquet"
        field = None
    elif case == "empty_csv_column":
        path = tmp_path / "p.csv"
        path.write_text("id,target\nJVASP-1,x\n")
        field = "'prediction'"
    else:
        path = tmp_path / "garbage.parquet"
        path.write_bytes(b"not a parquet file at all")
        field = "'file'"
    with pytest.raises(EvaluationInputError) as ei:
        evaluate(task, str(path), reference=str(reference), generic=False)
    msg = str(ei.value)
    if case != "wrong_task":
        assert str(path) in msg
    if field:
        assert field in msg


def test_cli_reports_errors_without_traceback(reference, jarvis_rows, tmp_path):
    from typer.testing import CliRunner

    from dismai_data.cli import app

    path = _write(jarvis_rows["test"][:2] * 2, tmp_path / "dup.parquet")
    res = CliRunner().invoke(app, ["evaluate", "--task", "jarvis-supercon-3d", "--predictions", str(path),
                                   "--reference", str(reference)])
    assert res.exit_code == 2
    assert "Traceback" not in res.output and "duplicate id" in res.output and "'id'" in res.output
    ok = _write(jarvis_rows["test"], tmp_path / "ok.parquet")
    res = CliRunner().invoke(app, ["evaluate", "--task", "jarvis-supercon-3d", "--predictions", str(ok),
                                   "--reference", str(reference), "--out", str(tmp_path / "o"), "--no-generic"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output[res.output.index("{"):])["metrics"]["match_rate"] == 1.0


def test_extxyz_and_poscar_folder_inputs(reference, jarvis_rows, tmp_path):
    from dismai_data.io import poscar_string, write_extxyz

    test = jarvis_rows["test"]
    write_extxyz(test, tmp_path / "p.extxyz")
    r = evaluate("jarvis-supercon-3d", str(tmp_path / "p.extxyz"), reference=str(reference), generic=False)
    assert r.metrics["match_rate"].value == 1.0 and r.metrics["mae_a"].value < 1e-6
    folder = tmp_path / "poscars"
    folder.mkdir()
    for row in test:
        (folder / f"{row['id']}.vasp").write_text(poscar_string(row))
    r = evaluate("jarvis-supercon-3d", str(folder), reference=str(reference), generic=False)
    assert r.metrics["match_rate"].value == 1.0 and r.metrics["mae_a"].value == 0.0


def test_bootstrap_pivotal_definition():
    v = np.arange(20, dtype=float) ** 1.5
    stat, lo, hi = bootstrap_mean(v)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, v.size, size=(1000, v.size))
    samples = v[idx].mean(axis=1)
    assert stat == v.mean()
    assert lo == pytest.approx(np.percentile(samples, 97.5) - stat, abs=1e-12)
    assert hi == pytest.approx(stat - np.percentile(samples, 2.5), abs=1e-12)
    assert pivotal_errors(1.0, np.array([])) == (None, None)


def test_kld_matches_scipy_entropy():
    from scipy.stats import entropy

    rng = np.random.default_rng(1)
    p, q = rng.normal(0, 1, 500), rng.normal(0.3, 1.1, 500)
    e = histogram_edges(p, q, bins=10)
    hp, _ = np.histogram(p, e)
    hq, _ = np.histogram(q, e)
    if np.all(hq > 0):
        assert kld(p, q, e) == pytest.approx(entropy(hp, hq), abs=1e-12)
    assert kld(p, p, e) == 0.0
    # an empty predicted bin costs p log(p / epsilon)
    e2 = np.array([0.0, 1.0, 2.0])
    assert kld([0.5, 1.5], [0.5, 0.5], e2) == pytest.approx(0.5 * np.log(0.5) + 0.5 * np.log(0.5 / 1e-10))
