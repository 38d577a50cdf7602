"""Reference baseline models as hub model repos (installed as ``dismai_data.models``).

Every baseline repo holds a ``config.json`` whose ``baseline`` key names its class, and a
``README.md`` model card (YAML: license, library_name, tags, datasets, model-index with
the scores of ``dismai_data.evaluation``). One call loads any of them::

    from dismai_data.models import load
    model = load("dismai/cryingan-alloy-300k-narrow")      # HF_ENDPOINT -> the hub
    rows = model.generate(1000, seed=0)                     # structure rows
    write_predictions(rows, "preds.parquet")                # what `dismai evaluate` reads

Each class is also a ``huggingface_hub`` mixin, so ``CryinGAN.from_pretrained(repo)``,
``RandomSolidSolution.from_pretrained(repo)`` ... work directly.

| baseline | module | what it is |
|---|---|---|
| ``cryingan`` | :mod:`.cryingan` | CryinGAN (paper 000, 2.4), torch, trained here |
| ``diffcsp`` | :mod:`.diffcsp` | DiffCSP (Jiao et al. 2023) on chemeleon-dng's CSPNet, trained here |
| ``random-solid-solution`` | :mod:`.random_baselines` | ideal random Fe-Ni-Cr on the FCC lattice |
| ``random-packing`` | :mod:`.random_baselines` | random dense packing with a minimum distance (a-Si) |
| ``random-interface`` | :mod:`.random_baselines` | the interface builder's random generator, unrelaxed |
| ``template`` | :mod:`.template` | nearest-composition training structure, species substituted, volume scaled |
| relaxer | :mod:`.relaxer` | ``dismai/m3gnet-mp-2021.2.8-pes`` (matgl weights; not a generator) |
"""

from __future__ import annotations

if __name__ != "dismai_data.models":  # the checkout root on sys.path makes this folder importable as 'models'
    raise ImportError(f"{__name__!r} is the checkout folder models/: it is installed as dismai_data.models; "
                      "import that (a second copy would share, and break, the first one's numba cache)")

import json
import os
from pathlib import Path

BASELINES = {
    "cryingan": ("cryingan", "CryinGAN"),
    "diffcsp": ("diffcsp", "DiffCSP"),
    "random-solid-solution": ("random_baselines", "RandomSolidSolution"),
    "random-packing": ("random_baselines", "RandomPacking"),
    "random-interface": ("random_baselines", "RandomInterface"),
    "template": ("template", "TemplateBaseline"),
}


def baseline_class(kind: str):
    import importlib

    if kind not in BASELINES:
        raise ValueError(f"config.json: field 'baseline' is {kind!r}; known: {', '.join(BASELINES)}")
    mod, cls = BASELINES[kind]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), cls)


def read_config(repo: str | os.PathLike, revision: str | None = None) -> dict:
    """``config.json`` of a local folder or a hub model repo."""
    path = Path(repo).expanduser()
    if path.is_dir():
        f = path / "config.json"
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing; is {path} a model folder?")
    else:
        from huggingface_hub import hf_hub_download

        f = Path(hf_hub_download(str(repo), "config.json", revision=revision))
    try:
        cfg = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{repo}: config.json is not valid JSON ({exc})") from None
    if "baseline" not in cfg:
        raise ValueError(f"{repo}: config.json has no field 'baseline' (one of {', '.join(BASELINES)})")
    return cfg


def load(repo: str | os.PathLike, revision: str | None = None):
    """Load any baseline from a hub model repo (HF_ENDPOINT) or a local folder."""
    cfg = read_config(repo, revision)
    cls = baseline_class(cfg["baseline"])
    path = Path(repo).expanduser()
    return cls.from_pretrained(str(path) if path.is_dir() else str(repo), revision=revision)


def write_predictions(rows: list[dict], out: str | os.PathLike) -> Path:
    """Write structure rows as a predictions parquet (structure columns of
    :mod:`dismai_data.schema`, the layout ``dismai evaluate`` reads)."""
    import pyarrow.parquet as pq

    from dismai_data.schema import STRUCTURE_FEATURES
    from dismai_data.structure import rows_to_table

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keep = list(STRUCTURE_FEATURES)
    table = rows_to_table([{k: r[k] for k in keep} for r in rows])
    pq.write_table(table, out)
    return out


__all__ = ["BASELINES", "baseline_class", "load", "read_config", "write_predictions"]
