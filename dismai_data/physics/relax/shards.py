"""Checkpoints of :func:`~dismai_data.physics.relax.many.relax_many`: each finished shard of results
is one parquet file of structure rows plus result columns, written atomically; a rerun reads them
and relaxes only what is missing (resume after a kill)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dismai_data.physics.relax.inputs import RelaxInputError, input_hash
from dismai_data.physics.relax.results import RelaxResult

#: parquet key-value metadata key of a shard's ``shard_metadata`` (JSON)
SHARD_METADATA_KEY = b"dismai.relax_shard"

_COLUMNS = ("id", "input_sha256", "relaxed", "energy", "fmax", "steps", "converged", "error")


def _extra_features():
    from datasets import Value

    return {
        "energy": Value("float64"),
        "energy_per_atom": Value("float64"),
        "fmax": Value("float64"),
        "steps": Value("int32"),
        "converged": Value("bool"),
        "relaxed": Value("bool"),
        "error": Value("string"),
        "input_sha256": Value("string"),
    }


def _result_row(key: str, structure_in, res: RelaxResult) -> dict:
    from dismai_data.structure import row_from_structure

    s = res.structure if res.structure is not None else structure_in
    extra = {
        "energy": res.energy,
        "energy_per_atom": None if res.energy is None else res.energy / len(s),
        "fmax": res.fmax,
        "steps": int(res.steps),
        "converged": bool(res.converged),
        "relaxed": res.structure is not None,
        "error": res.error,
        "input_sha256": input_hash(structure_in),
    }
    return row_from_structure(s, id=key, extra=extra, symmetry=False)


def _row_result(row: dict) -> RelaxResult:
    from dismai_data.structure import row_to_structure

    structure = row_to_structure(row) if row["relaxed"] else None
    return RelaxResult(structure, row["energy"], row["fmax"], int(row["steps"]), bool(row["converged"]),
                       row["error"])


def write_shard(folder: Path, name: str, rows: list[dict], metadata: dict | None = None) -> Path:
    """Write rows as one parquet shard atomically (temporary file, fsync, rename); ``metadata``
    (JSON-able) goes into the file's key-value metadata under :data:`SHARD_METADATA_KEY`."""
    import pyarrow.parquet as pq

    from dismai_data.structure import rows_to_table

    table = rows_to_table(rows, _extra_features())
    if metadata is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               SHARD_METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})
    path = folder / name
    tmp = folder / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def shard_name(keys: Sequence[str]) -> str:
    """``shard-<hash of its ids>.parquet``."""
    digest = hashlib.sha256("\0".join(keys).encode()).hexdigest()[:16]
    return f"shard-{digest}.parquet"


def finish_shard(pairs: Sequence[tuple[str, Any]], shard: Sequence[int], results: list, folder: Path | None,
                 metadata: dict | None = None) -> None:
    """Write the results of the items ``shard`` (indices into ``pairs``) as their shard, where
    there is a checkpoint folder."""
    if folder is None:
        return
    rows = [_result_row(pairs[i][0], pairs[i][1], results[i]) for i in shard]
    write_shard(folder, shard_name([pairs[i][0] for i in shard]), rows, metadata)


def read_shard_metadata(path: str | os.PathLike) -> dict | None:
    """The ``shard_metadata`` a checkpoint shard was written with (None: written without)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(SHARD_METADATA_KEY)
    return None if raw is None else json.loads(raw)


def checkpoint_index(checkpoint_dir: str | os.PathLike) -> dict[str, dict]:
    """Id -> provenance (``shard_metadata['provenance']``, {} where none was written) of every
    result in a checkpoint folder, reading only the id column and the file metadata; where an
    id is in several shards the last one by name counts, as in :func:`read_checkpoints`."""
    import pyarrow.parquet as pq

    out: dict[str, dict] = {}
    folder = Path(checkpoint_dir)
    for path in sorted(folder.glob("shard-*.parquet")) if folder.is_dir() else []:
        prov = (read_shard_metadata(path) or {}).get("provenance") or {}
        for key in pq.read_table(path, columns=["id"]).column("id").to_pylist():
            out[key] = prov
    return out


def read_checkpoints(checkpoint_dir: str | os.PathLike, *, parameters: dict | None = None,
                     ids: set[str] | None = None) -> dict[str, tuple[str, RelaxResult]]:
    """Finished results in a checkpoint folder: id -> (input sha256, RelaxResult); with ``ids``,
    only those (the other rows are not turned into structures: a build that resumes in
    rounds reads a folder of thousands of results once per round).

    ``parameters``: every shard must have been written with ``shard_metadata['parameters']``
    equal to these (as JSON); a shard written with other parameters, or without any, is refused
    with an error that names the shard and the first parameter that differs."""
    import pyarrow.parquet as pq

    out: dict[str, tuple[str, RelaxResult]] = {}
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return out
    want = None if parameters is None else json.loads(json.dumps(parameters, sort_keys=True))
    for path in sorted(folder.glob("shard-*.parquet")):
        try:
            rows = pq.read_table(path).to_pylist()
            meta = read_shard_metadata(path)
        except Exception as exc:
            raise RuntimeError(f"checkpoint shard {path} is unreadable ({exc}); delete it to recompute") from exc
        if want is not None:
            _check_parameters(path, want, (meta or {}).get("parameters"))
        for i, row in enumerate(rows):
            for col in _COLUMNS:
                if col not in row:
                    raise RuntimeError(f"checkpoint shard {path}, row {i}: missing column '{col}'")
            if ids is None or row["id"] in ids:
                out[row["id"]] = (row["input_sha256"], _row_result(row))
    return out


def _check_parameters(path: Path, want: dict, got: dict | None) -> None:
    """Refuse the shard ``path`` written with parameters ``got`` where ``want`` are asked for."""
    if got == want:
        return
    if got is None:
        why = "it records no parameters"
    else:
        key = next(k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k))
        why = f"parameter {key!r} is {got.get(key)!r} there, {want.get(key)!r} here"
    raise RelaxInputError(f"checkpoint shard {path} was written by a run with other parameters ({why}); "
                          "use another checkpoint folder or delete the shard to recompute")


def resume(folder: Path, pairs: Sequence[tuple[str, Any]], results: list, parameters: dict | None) -> list[int]:
    """Fill ``results`` with the results already in the checkpoint folder ``folder`` and return
    the indices of ``pairs`` still to relax; an id found there with a different input structure
    is an error."""
    folder.mkdir(parents=True, exist_ok=True)
    done = read_checkpoints(folder, parameters=parameters, ids={key for key, _ in pairs})
    todo: list[int] = []
    for i, (key, s) in enumerate(pairs):
        if key not in done:
            todo.append(i)
            continue
        digest, res = done[key]
        if digest != input_hash(s):
            raise RelaxInputError(
                f"relax_many: item {i} (id {key!r}): checkpoint folder {folder} holds a result for "
                "this id from a different input structure; use another folder or another id")
        results[i] = res
    return todo
