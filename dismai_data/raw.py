"""Access to the raw inputs shipped with the builders (``builders/raw/``), each
checked against its recorded sha256 before use."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from dismai_data.errors import DismaiError

#: sha256 of every raw input (see builders/raw/SOURCES.md for source and licence).
SHA256 = {
    "alexandria_ds_ab/DS-A.jsonl.gz": "01d7e74d680f328e3a80d88c0b247e047ea713c407c1b2f3bcf25246af43d153",
    "alexandria_ds_ab/DS-B.jsonl.gz": "3e8bc61dffa1b7c10fc19aa18eac1ed922184a3eeff2d2dd1a84545185470305",
    "alexandria_ds_ab/split_seed7.json": "88096d0fa8d279c3ad7aa98dceab204fb5c6ab3be67e61bda8054dbf1237f6a0",
    "carbon24/carbon24_atomgen_split.json.zip": "c49ca9fa944b39008a56fa49b03f0d7c1f26775c253999b268e82d1677d09a6c",
    "fenicr_alloy/alloy_ref_struc.extxyz": "b75aea458ba2a2e20d3f3946e3a529515140f2a78d428e0d2a4f70abffdfaead",
    "fenicr_alloy/fenicr_ce_eci.json": "03b103070dc4713a093fef47b9523b5acc5465c3a77de7c2c26a586ad2bcf251",
    "jarvis_supercon_3d/jarvis_leaderboard_atomgen_split.json.zip":
        "dcbe3bfedf21a66dd8b4c02589659f1ba6e25bf0fd1e805e358f02a4c2c6b615",
    "jarvis_supercon_3d/test.csv": "758d05ecb539e094f6f0e6b70880160a796e115ed738145f379ad5b9eadee402",
    "jarvis_supercon_3d/train.csv": "be0df28dbf1c72b06966bd90c4c85aefc07be5b73aa0fc7ed1cb18fa60c591a9",
    "jarvis_supercon_3d/val.csv": "2568af0713cbfe3b881a329269964e72274790f785e029d8fce99e2f7236d849",
    "perov5/perov5_atomgen_split.json.zip": "8528dc28a3cd282f2d6eff2ad027306e16b40a03c80b21b5f3eedd92b39d561e",
}


class RawDataError(DismaiError):
    pass


def raw_dir() -> Path:
    """Folder holding the raw inputs (inside the installed package)."""
    return Path(str(resources.files("dismai_data.builders") / "raw"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def raw_file(name: str, root: Path | None = None) -> Path:
    """Path of raw input ``name`` (e.g. ``perov5/perov5_atomgen_split.json.zip``),
    verified against its sha256. Files not in :data:`SHA256` are refused."""
    root = Path(root) if root is not None else raw_dir()
    path = root / name
    if not path.is_file():
        raise RawDataError(f"raw input {path} is missing")
    expected = SHA256.get(name)
    if expected is None:
        raise RawDataError(f"raw input {name} has no recorded sha256 in dismai_data.raw.SHA256")
    got = sha256_file(path)
    if got != expected:
        raise RawDataError(f"raw input {path} has sha256 {got}, expected {expected}: the file is not the "
                           "verified original")
    return path
