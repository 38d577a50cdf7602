"""The rows of the ``dismai/leaderboard`` dataset repo and how one is appended.

One parquet file, ``data/leaderboard.parquet``, one row per submission (scored or failed)
whose predictions repo is public (the others are withheld in the hub's storage and purged
from the repo's history when a repo is made private: :mod:`.store`), with a fixed Arrow
schema, so ``datasets.load_dataset("dismai/leaderboard")`` loads it.
``metrics`` is a JSON object ``{name: {value, error_low, error_high, n, unit}}`` (the
metric set differs from task to task; a JSON column keeps the schema fixed).
"""

from __future__ import annotations

import io
import json
import random
import time

import pyarrow as pa
import pyarrow.parquet as pq

REPO_ID = "dismai/leaderboard"
ORG = "dismai"
DATA_PATH = "data/leaderboard.parquet"

SCHEMA = pa.schema([
    ("submission_id", pa.string()), ("status", pa.string()), ("reason", pa.string()),
    ("task", pa.string()), ("model_name", pa.string()), ("model_repo", pa.string()), ("notes", pa.string()),
    ("submitter", pa.string()), ("submitted_at", pa.string()), ("scored_at", pa.string()),
    ("predictions_repo", pa.string()), ("predictions_commit", pa.string()), ("predictions_path", pa.string()),
    ("content_sha256", pa.string()),
    ("dataset_repo", pa.string()), ("dataset_revision", pa.string()), ("dataset_commit", pa.string()),
    ("evaluation_version", pa.string()), ("relaxed", pa.bool_()), ("relaxation_note", pa.string()),
    ("n_submitted", pa.int64()), ("n_accepted", pa.int64()), ("percent_failed", pa.float64()),
    ("metrics", pa.string()), ("scoring_seconds", pa.float64()), ("attempts", pa.int64()),
    # null when the hub's worker scored the row; else where and how the publisher scored it once
    # (scoring too long for the quick start, e.g. thousands of reconstruction pairs): hardware,
    # date, command. `dismai leaderboard rescore ID` recomputes such a row and must agree.
    ("shipped_from", pa.string()),
])

CARD = """---
license: cc-by-4.0
pretty_name: Dismai leaderboard
tags:
- leaderboard
- materials
configs:
- config_name: default
  data_files:
  - split: train
    path: data/leaderboard.parquet
---
# Dismai leaderboard

One row per submission to `dismai submit` whose predictions repo is public, scored by the hub's leaderboard worker with
`dismai_data.evaluation` (`evaluation_version`). `status` is `scored` or `failed` (then
`reason` says why). `metrics` is a JSON object: metric name -> value with its bootstrap 95 %
interval (`error_low`, `error_high`; interval = [value - error_low, value + error_high]).
`dataset_revision`/`dataset_commit` name the reference data, `predictions_repo` at
`predictions_commit` the scored predictions. `relaxed` is false where structures were
scored as submitted. `shipped_from` is set on rows the publisher scored once on its own
hardware (named there) instead of the hub's worker; `dismai leaderboard rescore` recomputes them.
"""


def table_from_rows(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in SCHEMA} for r in rows], schema=SCHEMA)


def rows_from_bytes(data: bytes) -> list[dict]:
    return pq.read_table(io.BytesIO(data)).to_pylist()


def rows_to_bytes(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table_from_rows(rows), buf, compression="zstd")
    return buf.getvalue()


def read_rows(api, revision: str | None = None) -> tuple[str | None, list[dict]]:
    """(head commit, rows) of the leaderboard repo via the stock client; (None, []) if absent."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        head = api.dataset_info(REPO_ID, revision=revision).sha
    except RepositoryNotFoundError:
        return None, []
    try:
        path = hf_hub_download(REPO_ID, DATA_PATH, repo_type="dataset", revision=head, endpoint=api.endpoint,
                               token=api.token, cache_dir=_cache_dir())
    except EntryNotFoundError:
        return head, []
    with open(path, "rb") as f:
        return head, rows_from_bytes(f.read())


def _cache_dir():
    import os
    import tempfile

    return os.environ.get("DISMAI_LEADERBOARD_CACHE") or os.path.join(tempfile.gettempdir(), "dismai-lb-cache")


def ensure_repo(api) -> None:
    api.create_repo(REPO_ID, repo_type="dataset", exist_ok=True)


def append_row(api, row: dict, attempts: int = 30, create: bool = True) -> tuple[str, dict, bool]:
    """Commit ``row`` to ``dismai/leaderboard`` unless a row with its ``submission_id`` is
    there already. Returns ``(commit, row as stored, appended)``. Concurrent writers are
    serialised by ``parent_commit`` (the hub answers 412 when the head moved): re-read, retry.
    The repo is public: the scorer calls this only for rows of public predictions repos
    (:func:`dismai_data.leaderboard.store.record_row`)."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    if create:
        ensure_repo(api)
    for i in range(attempts):
        head, rows = read_rows(api)
        for r in rows:
            if r["submission_id"] == row["submission_id"]:
                return head, r, False
        ops = [CommitOperationAdd(DATA_PATH, rows_to_bytes(rows + [row]))]
        if not api.file_exists(REPO_ID, "README.md", repo_type="dataset", revision=head):
            ops.append(CommitOperationAdd("README.md", CARD.encode()))
        try:
            info = api.create_commit(REPO_ID, ops, repo_type="dataset", parent_commit=head,
                                     commit_message=f"{row['status']}: {row['model_name']} on {row['task']} "
                                                    f"({row['submission_id']})")
            return info.oid, row, True
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status not in (409, 412) or i == attempts - 1:
                raise
            time.sleep(0.1 + random.random() * 0.4)
    raise RuntimeError("unreachable")


def metrics_of(row: dict) -> dict:
    if isinstance(row.get("metrics"), dict):
        return row["metrics"]
    try:
        return json.loads(row.get("metrics") or "{}")
    except ValueError:
        return {}
