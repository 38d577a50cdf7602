"""Shipped builds: dataset folders made here by ``dismai build`` that take too long for the
quick start (the interface relaxations, the a-Si MD), kept in the checkout's ``prebuilt/NAME/``
so that ``dismai main`` on a fresh clone can publish them without rebuilding; earlier versions
kept for reproducibility live in ``prebuilt/previous/<tag>/NAME/`` (:func:`previous`).

A shipped folder is exactly what ``dismai build NAME --out DIR`` wrote (``data/``,
``README.md`` card, ``figures/``, ``build_info.json``: builder version, parameters, input
sha256) plus ``SHA256SUMS``: the sha256 of every other file, checked before anything is
copied. :func:`install` copies a verified folder into ``HOME/datasets/NAME`` (never over an
existing build) and :func:`ship` makes a shipped folder from a build folder.

Only a source checkout has ``prebuilt/`` (it is not package data); elsewhere
:func:`available` is empty and the datasets are built with ``dismai build``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from dismai_data.raw import sha256_file as _sha256

#: ``prebuilt/`` of the source checkout this package was imported from
PREBUILT_DIR = Path(__file__).resolve().parent.parent / "prebuilt"
SUMS = "SHA256SUMS"


class PrebuiltError(ValueError):
    """A shipped build is incomplete or altered; the message names the folder and file."""


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != SUMS)


def available(root: Path | None = None) -> dict[str, Path]:
    """Shipped builds by dataset name (folders of ``root`` with a ``build_info.json``)."""
    root = PREBUILT_DIR if root is None else Path(root)
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir())
            if not p.name.startswith(".") and (p / "build_info.json").is_file()}


def previous(name: str, root: Path | None = None) -> list[Path]:
    """Earlier shipped versions of ``name`` kept for reproducibility
    (``prebuilt/previous/<tag>/<name>``, each a shipped build of its own), oldest tag first
    by name; the main job publishes each under its own version tag before the current build."""
    base = (PREBUILT_DIR if root is None else Path(root)) / "previous"
    if not base.is_dir():
        return []
    return [p / name for p in sorted(base.iterdir()) if (p / name / "build_info.json").is_file()]


def is_earlier_shipped(folder: str | os.PathLike, name: str, root: Path | None = None) -> bool:
    """Whether ``folder`` (a HOME/datasets/NAME) is a copy :func:`install` made of an earlier
    shipped version (its build_info.json equal to one in ``prebuilt/previous``), not a build of
    the user's own: the main job then replaces it with the current shipped build."""
    info = Path(folder) / "build_info.json"
    if not info.is_file():
        return False
    data = info.read_bytes()
    return any((old / "build_info.json").read_bytes() == data for old in previous(name, root))


def verify(folder: str | os.PathLike) -> dict:
    """Check every file of ``folder`` against its ``SHA256SUMS`` (no file missing, none extra,
    none changed) and that ``build_info.json`` names this dataset; returns the build info."""
    folder = Path(folder)
    sums_path = folder / SUMS
    if not sums_path.is_file():
        raise PrebuiltError(f"{folder}: no {SUMS}; not a shipped build (make one with dismai_data.prebuilt.ship)")
    expected = {}
    for n, line in enumerate(sums_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise PrebuiltError(f"{sums_path}: line {n} is not '<sha256>  <path>': {line!r}")
        expected[name] = digest
    present = set(_files(folder))
    missing = sorted(set(expected) - present)
    extra = sorted(present - set(expected))
    if missing:
        raise PrebuiltError(f"{folder}: {missing[0]} is listed in {SUMS} but missing ({len(missing)} missing)")
    if extra:
        raise PrebuiltError(f"{folder}: {extra[0]} is not listed in {SUMS} ({len(extra)} unlisted)")
    for name, digest in expected.items():
        got = _sha256(folder / name)
        if got != digest:
            raise PrebuiltError(f"{folder / name}: sha256 {got} differs from {SUMS} ({digest}); the shipped "
                                "build was altered")
    info = json.loads((folder / "build_info.json").read_text())
    if info.get("name") != folder.name:
        raise PrebuiltError(f"{folder / 'build_info.json'}: name {info.get('name')!r} is not the folder's "
                            f"{folder.name!r}")
    return info


def _copy_in(src: Path, dst: Path, finish=None) -> None:
    """Copy the files of ``src`` (not its SHA256SUMS) to ``dst`` through a staging folder
    beside it, call ``finish(staging, files)`` there, then move it in whole (replacing
    ``dst``); nothing is left half-copied."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        files = _files(src)
        for rel in files:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, staging / rel)
        if finish is not None:
            finish(staging, files)
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(staging, dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def install(name: str, datasets_dir: str | os.PathLike, root: Path | None = None) -> Path | None:
    """Copy the verified shipped build of ``name`` to ``datasets_dir/name`` and return it;
    None when nothing is shipped for ``name``. Never replaces an existing folder there (a
    user's own build wins); the copy is made in a staging folder and moved in whole."""
    src = available(root).get(name)
    if src is None:
        return None
    dst = Path(datasets_dir) / name
    if dst.exists():
        raise FileExistsError(f"{dst} exists; not replacing it with the shipped build")
    verify(src)
    _copy_in(src, dst)
    return dst


def ship(build_folder: str | os.PathLike, root: Path | None = None) -> Path:
    """Make ``root/NAME`` (default ``prebuilt/NAME``) from a folder written by
    ``dismai build``: its files unchanged plus ``SHA256SUMS``."""
    build_folder = Path(build_folder).expanduser()
    info_path = build_folder / "build_info.json"
    if not info_path.is_file():
        raise PrebuiltError(f"{build_folder}: no build_info.json; not a folder written by `dismai build`")
    name = json.loads(info_path.read_text())["name"]
    dst = (PREBUILT_DIR if root is None else Path(root)) / name

    def write_sums(staging: Path, files: list[str]) -> None:
        (staging / SUMS).write_text("".join(f"{_sha256(staging / rel)}  {rel}\n" for rel in files))

    _copy_in(build_folder, dst, write_sums)
    verify(dst)
    return dst
