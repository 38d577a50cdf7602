"""The interface builder's parameters: defaults, checks, which of them the data (and the
relaxation checkpoint shards) depend on, and the work folder they name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from dismai_data.builders.interface.references import REFERENCES_SHA256
from dismai_data.paths import default_home


BUILDER_VERSION = "1.1.0"

DESCRIPTION = ("Dismai-Bench Li3ScCl6(100)-LiCoO2(110) disordered interfaces (264 atoms), rebuilt by random "
               "generation of the interface region and M3GNet relaxation; or read from the original extxyz files")

PARAMETERS: dict[str, tuple[Any, str]] = {
    "seed": (2024, "base seed of every random number (candidate k uses default_rng([seed, k]); split: "
                   "default_rng([seed, 2]))"),
    "n_structures": (1500, "structures kept at most (the lowest interface energies within window_jm2 of the "
                           "lowest)"),
    "n_candidates": (3000, "random interfaces generated and relaxed (candidates 0..n-1, in order)"),
    "window_jm2": (0.4, "keep structures with interface energy <= lowest + this (J/m^2; the paper's "
                        "low-interface-energy criterion)"),
    "fmax": (0.05, "relaxation stops when the max atomic force is below this, eV/Å"),
    "max_steps": (1000, "relaxation steps at most; unconverged candidates are not kept"),
    "train_fraction": (0.8, "fraction of rows in the train split (rest: validation)"),
    "time_budget_s": (None, "stop submitting new candidates after this many seconds of wall time and build "
                            "from those relaxed (null: relax all n_candidates); how the preview was made"),
    "batch_size": (8, "structures per relax_many batch / checkpoint shard"),
    "scheduler": (None, "relax_many scheduler: null (in process), 'local' or a Dask scheduler address"),
    "workers": (1, "relax_many workers; does not change the data"),
    "engine": ("fast", "force evaluation of the relaxations: 'fast' (the fast exact M3GNet path) or 'compile' "
                       "(the same path through torch.compile: about 1.15x less CPU per force call after a "
                       "compilation of 10-40 s in each process); float32 rounding differs only"),
    "device": ("auto", "torch device of the relaxations: 'auto' (CUDA where available, else CPU), 'cpu', 'cuda' "
                       "or 'cuda:N'; float32 rounding differs only"),
    "workdir": (None, "folder for checkpoints; a rerun continues there (default: $DISMAI_HOME or the user "
                      "cache dir, under work/interface-<hash of the data parameters>)"),
    "from_files": (None, "instead of generating: a folder, file or comma-separated list of the original "
                         "Dismai-Bench interface extxyz files; split (train/val) from each file name"),
}

#: the ``engine`` parameter's values and the relax_many ``fast`` option each stands for
ENGINES = {"fast": True, "compile": "compile"}

#: parameters that never change the data
RUNTIME = ("time_budget_s", "batch_size", "scheduler", "workers", "engine", "device", "workdir", "from_files")

#: version of the candidate generation (bits of the unrelaxed structures): 2 since builder 1.1.0,
#: whose geometry uses no BLAS, so a candidate has the same bits on every CPU (1.0.0's depended
#: on the OpenBLAS kernel); part of the checkpoint parameters
GENERATOR_VERSION = 2


def parse_params(params: dict) -> dict:
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"interface: unknown parameters {sorted(unknown)}; known: {', '.join(PARAMETERS)}")
    p = {k: v for k, (v, _) in PARAMETERS.items()}
    p.update(params)
    for k in ("seed", "n_structures", "n_candidates", "max_steps", "batch_size", "workers"):
        p[k] = int(p[k])
    for k in ("window_jm2", "fmax", "train_fraction"):
        p[k] = float(p[k])
    if p["time_budget_s"] not in (None, "", "null", "None"):
        p["time_budget_s"] = float(p["time_budget_s"])
    else:
        p["time_budget_s"] = None
    if p["scheduler"] in ("", "null", "None"):
        p["scheduler"] = None
    if p["engine"] not in ENGINES:
        raise ValueError(f"interface: parameter engine must be 'fast' or 'compile', got {p['engine']!r}")
    if not (p["device"] in ("auto", "cpu", "cuda") or str(p["device"]).startswith("cuda:")):
        raise ValueError(f"interface: parameter device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {p['device']!r}")
    if p["n_candidates"] < 1 or p["n_structures"] < 1:
        raise ValueError("interface: n_candidates and n_structures must be >= 1")
    return p


def data_params(p: dict) -> dict:
    return {k: v for k, v in p.items() if k not in RUNTIME}


def shard_parameters(p: dict) -> dict:
    """What a relaxation checkpoint shard must have been made with to be reused: the data
    parameters that change a relaxation (not n_candidates, n_structures, window_jm2 or
    train_fraction: more candidates continue the same work), the references' sha256 and the
    generator version. Written into every shard; a shard with others is refused."""
    key = dict(data_params(p))
    for k in ("n_candidates", "n_structures", "window_jm2", "train_fraction"):
        key.pop(k)
    key["references_sha256"] = REFERENCES_SHA256
    key["generator_version"] = GENERATOR_VERSION
    return key


def work_folder(p: dict) -> Path:
    if p["workdir"]:
        return Path(p["workdir"]).expanduser()
    h = hashlib.sha256(json.dumps(shard_parameters(p), sort_keys=True).encode()).hexdigest()[:12]
    return default_home() / "work" / f"interface-{h}"


def torch_device(p: dict) -> str:
    import torch

    if p["device"] == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return p["device"]
