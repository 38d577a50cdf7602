"""Checks shared by the builder tests."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow.parquet as pq
import yaml

from dismai_data.builders.write import write_dataset
from dismai_data.builders import run_builder


def build_to(tmp_path_factory, name: str, **params):
    out = tmp_path_factory.mktemp(name.replace("-", "_")) / name
    b = run_builder(name, **params)
    write_dataset(b, out)
    return b, out


def card_meta(out: Path) -> dict:
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def check_layout_and_features(build, out: Path, expected: dict[str, int],
                              figures=("figures/elements.png", "figures/crystal_systems.png", "figures/num_atoms.png")):
    """Counts per split on disk, card YAML consistent, load_dataset and Dataset.from_parquet
    give the declared Features, the figures exist and the card shows them."""
    meta = card_meta(out)
    for key in ("license", "pretty_name", "tags", "task_categories", "size_categories", "configs", "dataset_info"):
        assert key in meta, key
    # the card's split sizes parse with `datasets` itself (it drops a malformed list with a warning)
    info = meta["dataset_info"][0] if isinstance(meta["dataset_info"], list) else meta["dataset_info"]
    splits = datasets.splits.SplitDict._from_yaml_list(info["splits"])
    assert {s: splits[s].num_examples for s in splits} == {s: expected[s] for s in splits}
    assert all(splits[s].num_bytes > 0 for s in splits)
    files = {d["split"]: d["path"] for d in meta["configs"][0]["data_files"]}
    assert set(files) == set(expected)
    for split, n in expected.items():
        assert pq.read_metadata(out / files[split]).num_rows == n
    ds = datasets.load_dataset("parquet", data_dir=str(out / "data"))
    assert {s: ds[s].num_rows for s in ds} == expected
    for split in ds:
        assert ds[split].features == build.features
    last = list(expected)[-1]
    assert datasets.Dataset.from_parquet(str(out / files[last])).features == build.features
    for fig in figures:
        assert (out / fig).stat().st_size > 1000
        assert f"]({fig})" in (out / "README.md").read_text()
    return ds
