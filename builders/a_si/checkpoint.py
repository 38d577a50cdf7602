"""Mid-run checkpoints of one melt-quench cell: written atomically, verified before use."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from dismai_data.builders.a_si.params import BUILDER_VERSION, data_key
from dismai_data.raw import sha256_file

_log = logging.getLogger(__name__)


def fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


class CellCheckpoint:
    """Mid-run checkpoint of one melt-quench cell in the work folder:
    ``cell_{c}.ckpt.json`` (state: step, sha256 of the files below, melt results),
    ``cell_{c}.ckpt.{step}.restart`` (LAMMPS binary restart) and ``cell_{c}.ckpt.x0.npy``
    (unwrapped positions at the start of the melt, for ``melt_msd``). Each file is written
    to a temporary name and renamed; the JSON is replaced last, so it always names complete
    files, and older restart files are deleted only after it."""

    def __init__(self, workdir: Path, cell: int):
        self.dir = Path(workdir)
        self.prefix = f"cell_{cell:03d}.ckpt"
        self.cell = cell
        self.json = self.dir / f"{self.prefix}.json"
        self.discarded = 0
        self.x0 = self.dir / f"{self.prefix}.x0.npy"

    def files(self) -> list[Path]:
        return sorted(self.dir.glob(f"{self.prefix}.*"))

    def remove(self) -> None:
        for f in self.files():
            f.unlink(missing_ok=True)

    def load(self, p: dict) -> dict | None:
        """The state if a complete, verified checkpoint exists; ``None`` if there is none.
        An unusable checkpoint is logged and deleted (the cell then starts from the beginning)."""
        if not self.json.is_file():
            if self.files():  # leftovers of an interrupted first checkpoint (no JSON yet)
                self.remove()
            return None
        try:
            state = json.loads(self.json.read_text())
            if state.get("builder_version") != BUILDER_VERSION or state.get("data") != data_key(p):
                raise ValueError("it belongs to another builder version or parameter set")
            restart = self.dir / state["restart"]
            for path, key in ((restart, "restart_sha256"), (self.x0, "x0_sha256")):
                if not path.is_file():
                    raise ValueError(f"{path.name} is missing")
                if sha256_file(path) != state[key]:
                    raise ValueError(f"{path.name} does not match its sha256 (truncated or corrupt)")
            state["x0"] = np.load(self.x0)
            if state["x0"].shape != (p["cell_atoms"], 3):
                raise ValueError(f"{self.x0.name} has shape {state['x0'].shape}")
        except Exception as exc:  # noqa: BLE001 - any defect means: do not use it
            self.discard(exc)
            return None
        state["restart_path"] = restart
        return state

    def discard(self, why) -> None:
        _log.warning("a-si cell %d: checkpoint %s is unusable (%s); deleting it and restarting the cell's "
                     "melt-quench from the beginning", self.cell, self.json, why)
        self.discarded += 1
        self.remove()

    def save(self, lmp, p: dict, step: int, x0: np.ndarray, extra: dict) -> None:
        if not self.x0.is_file():
            tmp = self.dir / f"{self.prefix}.x0.tmp.npy"
            np.save(tmp, x0)
            fsync(tmp)
            os.replace(tmp, self.x0)
        restart = self.dir / f"{self.prefix}.{step}.restart"
        tmp = self.dir / f"{self.prefix}.{step}.restart.tmp"
        lmp.command(f"write_restart {tmp}")
        fsync(tmp)
        os.replace(tmp, restart)
        state = {"builder_version": BUILDER_VERSION, "data": data_key(p), "step": int(step),
                 "restart": restart.name, "restart_sha256": sha256_file(restart), "x0_sha256": sha256_file(self.x0),
                 **extra}
        tmp = self.dir / f"{self.prefix}.json.tmp"
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        fsync(tmp)
        os.replace(tmp, self.json)
        for f in self.dir.glob(f"{self.prefix}.*.restart"):
            if f != restart:
                f.unlink(missing_ok=True)
