"""The relaxer potential: M3GNet-MP-2021.2.8-PES from the hub model repo :data:`RELAXER_REPO`, else
the copy packaged with the library (``dismai_data/physics/weights``), loaded through matgl with
:func:`~dismai_data.physics.matgl_fix.fix_potential` and cached per (source, device)."""

from __future__ import annotations

import copy
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Hub model repo of the relaxer (its files: model.json, model.pt, state.pt).
RELAXER_REPO = "dismai/m3gnet-mp-2021.2.8-pes"
#: Name of the relaxer's weights (the packaged folder's name).
WEIGHTS_NAME = "M3GNet-MP-2021.2.8-PES"

_POTENTIALS: dict[tuple[str, str], Any] = {}
_POTENTIALS_LOCK = threading.Lock()


def local_weights_dir() -> Path:
    """The packaged copy of the relaxer weights (see ``dismai_data/physics/weights/SOURCES.md``)."""
    import importlib.resources

    return Path(str(importlib.resources.files("dismai_data.physics"))) / "weights" / WEIGHTS_NAME


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _load_folder(folder: Path, device: str, source: str):
    import matgl

    folder = Path(folder)
    missing = [f for f in ("model.json", "model.pt", "state.pt") if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"potential folder {folder} lacks {', '.join(missing)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        potential = matgl.load_model(folder)
    # matgl 4.1.2 sums M3GNet node messages into the source atom; the DGL-era weights were
    # trained summing into the destination (compounds wrong, elements fine): matgl_fix.
    from dismai_data.physics.matgl_fix import fix_potential

    potential = fix_potential(potential)
    potential = potential.to(device)
    potential.eval()
    potential.dismai_source = source
    potential.dismai_path = str(folder)
    potential.dismai_device = device
    return potential


def _default_folder() -> tuple[Path, str, str | None]:
    """(folder, source label, why the hub was not used) of the default relaxer: the hub repo,
    else the packaged copy."""
    fallback_reason = None
    if _offline():
        fallback_reason = "HF_HUB_OFFLINE is set"
    else:
        try:
            folder, label = _hub_snapshot(RELAXER_REPO)
            return folder, label, None
        except Exception as exc:  # any hub failure: use the packaged copy
            fallback_reason = f"hub download of {RELAXER_REPO} failed: {type(exc).__name__}: {exc}"
    folder = local_weights_dir()
    logger.info("relaxer: packaged copy %s (%s)", folder, fallback_reason)
    return folder, f"local:{folder}", fallback_reason


def load_potential(source: str | os.PathLike | None = None, *, device: str | None = None):
    """The relaxer as a matgl ``Potential`` (cached per (source, device) in this process).

    ``source=None``: the hub model repo :data:`RELAXER_REPO` through
    ``huggingface_hub.snapshot_download`` (which follows ``HF_ENDPOINT``), unless
    ``HF_HUB_OFFLINE`` is set or the download fails; then the packaged local copy
    (:func:`local_weights_dir`). A folder path loads that folder; an ``owner/name`` string
    that is not a folder is downloaded from the hub (no fallback).

    The returned potential records where it came from: ``potential.dismai_source`` is
    ``'hub:<repo>@<commit>'`` or ``'local:<folder>'``; ``potential.dismai_path`` is the folder
    loaded; ``potential.dismai_fallback_reason`` says why the hub was not used (or None).
    Device: ``device`` if given, else CUDA when available, else CPU.
    """
    device = device or _default_device()
    key = ("<default>" if source is None else str(source), device)
    with _POTENTIALS_LOCK:
        if key in _POTENTIALS:
            return _POTENTIALS[key]
        fallback_reason = None
        if source is None:
            folder, label, fallback_reason = _default_folder()
        elif Path(source).is_dir():
            folder = Path(source)
            label = f"local:{folder.resolve()}"
        elif isinstance(source, str) and source.count("/") == 1 and not source.startswith((".", "/")):
            folder, label = _hub_snapshot(source)
        else:
            raise FileNotFoundError(f"potential source {str(source)!r} is neither a folder nor a hub repo id")
        potential = _load_folder(folder, device, label)
        potential.dismai_fallback_reason = fallback_reason
        _POTENTIALS[key] = potential
        return potential


def _hub_snapshot(repo: str) -> tuple[Path, str]:
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(repo_id=repo, repo_type="model",
                                    allow_patterns=["model.json", "model.pt", "state.pt", "*.md"]))
    # snapshot folders are named by the commit they hold
    return folder, f"hub:{repo}@{folder.name}"


def no_stress(potential):
    """A view of ``potential`` that skips the stress (the lattice is fixed): same modules
    and weights, only the ``calc_stresses`` flag differs."""
    view = getattr(potential, "_dismai_no_stress", None)
    if view is None:
        view = potential
        if getattr(potential, "calc_stresses", False):
            view = copy.copy(potential)
            view.calc_stresses = False
        try:
            object.__setattr__(potential, "_dismai_no_stress", view)
        except Exception:  # pragma: no cover - exotic module subclasses
            pass
    return view
