"""Scoring one submission (run by the worker in a child process, one per job).

``python -m dismai_data.leaderboard.score --job JOB.json --endpoint URL --out OUT.json``
(token in ``HF_TOKEN``): downloads the predictions repo at the submitted commit and the
reference dataset ``dismai/<dataset>`` at its latest version tag (both with the stock
client), scores with :func:`dismai_data.evaluation.api.evaluate`, commits the row to
``dismai/leaderboard`` when the predictions repo is public, else keeps it withheld in the
hub's storage (:func:`dismai_data.leaderboard.store.record_row`; skipped if the submission
already has a row) and writes
``{"row": ..., "commit": ..., "appended": bool}`` to OUT. Any problem with the submission
becomes a row with ``status="failed"`` and the reason; ``--fail REASON`` records such a
row without scoring (the worker uses it when scoring crashed too often or timed out).
``--no-commit`` scores only (re-scoring check).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from .store import record_row

DISORDER_ATOMS = {"interface": 264, "a-si": 256, "alloy": 256}


def _version_key(tag: str):
    """``v1.0`` > ``v1.0-preview`` > ``v0.9``: a release sorts after its pre-releases."""
    m = re.match(r"v?(\d+(?:\.\d+)*)(.*)$", tag)
    if m is None:
        return ((), 0, tag)
    return tuple(int(p) for p in m.group(1).split(".")), 0 if m.group(2) else 1, m.group(2)


def reference_revision(api, dataset: str) -> tuple[str, str, str]:
    """``(repo, revision label, commit)`` of ``dismai/<dataset>``: its highest ``v*`` tag,
    else ``main``."""
    repo = f"dismai/{dataset}"
    refs = api.list_repo_refs(repo, repo_type="dataset")
    tags = sorted((t for t in refs.tags if t.name.startswith("v")), key=lambda t: _version_key(t.name))
    if tags:
        return repo, tags[-1].name, tags[-1].target_commit
    main = next((b.target_commit for b in refs.branches if b.name == "main"), None)
    if main is None:
        raise ValueError(f"{repo} has no main branch")
    return repo, "main", main


def base_row(job: dict) -> dict:
    return {k: job.get(k) for k in ("task", "model_name", "model_repo", "notes", "submitter", "submitted_at",
                                    "predictions_repo", "predictions_commit", "predictions_path",
                                    "content_sha256")} | {"submission_id": job["id"]}


def failed_row(job: dict, reason: str, attempts: int = 1) -> dict:
    from dismai_data.evaluation.result import EVALUATION_VERSION

    return base_row(job) | {"status": "failed", "reason": reason[:2000], "metrics": "{}", "relaxed": False,
                            "evaluation_version": EVALUATION_VERSION, "attempts": attempts,
                            "scored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def predictions_from_storage(storage: Path, job: dict, dest: Path) -> Path:
    """The submitted files of a predictions repo the worker's token may not read (a private
    repo of the submitter), copied from the hub's storage at the submitted commit; the
    repo's name resolves to the same files the owner's client sees, or to RepositoryNotFoundError."""
    import shutil

    from huggingface_hub.errors import RepositoryNotFoundError

    from dismai_data.hub.storage import HubError, RepoKey, Storage

    st = Storage(storage)
    try:
        key = RepoKey("dataset", *job["predictions_repo"].split("/"))
        if st.repo_meta(key) is None:
            raise HubError(404, "RepoNotFound", job["predictions_repo"])
        _, tree = st.tree(key, job["predictions_commit"])
    except (HubError, TypeError, ValueError):
        raise RepositoryNotFoundError(f"dataset repo {job['predictions_repo']} or its commit "
                                      f"{job['predictions_commit']} not found") from None
    path = job["predictions_path"].strip("/")
    for p, e in tree.items():
        if p == path or p.startswith(path + "/"):
            out = dest / p
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(st.blob_path(e["blob"]), out)
    return dest


def score_job(job: dict, api, work: Path, relax: bool = True, attempts: int = 1,
              storage: Path | None = None) -> dict:
    """The leaderboard row of ``job`` (scored, or failed with the reason). ``storage``: the
    hub's storage, where a private predictions repo is read from."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    from dismai_data.evaluation.api import evaluate, parse_task
    from dismai_data.evaluation.sources import EvaluationInputError

    t0 = time.perf_counter()
    row = base_row(job)
    try:
        kind, dataset, config = parse_task(job["task"])
        ref_repo, ref_rev, ref_commit = reference_revision(api, dataset)
        row.update(dataset_repo=ref_repo, dataset_revision=ref_rev, dataset_commit=ref_commit)
        ref_dir = snapshot_download(ref_repo, repo_type="dataset", revision=ref_commit, endpoint=api.endpoint,
                                    token=api.token, local_dir=work / "reference" / dataset / ref_commit,
                                    allow_patterns=["data/**", "build_info.json"])
        try:
            pred_dir = snapshot_download(job["predictions_repo"], repo_type="dataset",
                                         revision=job["predictions_commit"], endpoint=api.endpoint, token=api.token,
                                         local_dir=work / "predictions" / job["id"],
                                         allow_patterns=[job["predictions_path"], job["predictions_path"] + "/**"])
        except RepositoryNotFoundError:
            if storage is None:
                raise
            pred_dir = predictions_from_storage(storage, job, work / "predictions" / job["id"])
        pred = Path(pred_dir) / job["predictions_path"]
        # a-si / interface relax as `dismai evaluate` does by default (interface: the relaxer
        # repo of this hub, or the packaged copy; a-si: the dataset's LAMMPS potential)
        result = evaluate(job["task"], pred, column=job.get("column"), reference=ref_dir, figures=False,
                          generic=(kind == "generation"), no_relax=not relax,
                          workers=int(os.environ.get("DISMAI_LEADERBOARD_WORKERS", os.cpu_count() or 1)))
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:  # permanent: recorded as failed
        return failed_row(job, f"not on the hub: {exc}".splitlines()[0], attempts) | {
            k: row.get(k) for k in ("dataset_repo", "dataset_revision", "dataset_commit")}
    except OSError:  # hub unreachable, download cut: transient, the worker retries the job
        raise
    except (EvaluationInputError, ValueError) as exc:
        return failed_row(job, f"{type(exc).__name__}: {exc}", attempts) | {
            k: row.get(k) for k in ("dataset_repo", "dataset_revision", "dataset_commit")}
    except Exception as exc:  # a crash inside scoring: recorded, never dropped
        return failed_row(job, f"scoring crashed: {type(exc).__name__}: {exc}", attempts) | {
            k: row.get(k) for k in ("dataset_repo", "dataset_revision", "dataset_commit")}
    metrics = {name: {"value": m.value, "error_low": m.error_low, "error_high": m.error_high, "n": m.n,
                      "unit": m.unit} for name, m in sorted(result.metrics.items())}
    c = result.counts
    metrics["percent_failed"] = {"value": c.percent_failed, "error_low": None, "error_high": None,
                                 "n": c.submitted, "unit": "%"}
    row.update(status="scored", reason=None, evaluation_version=result.evaluation_version, relaxed=result.relaxed,
               relaxation_note=result.relaxation_note, n_submitted=c.submitted, n_accepted=c.accepted,
               percent_failed=c.percent_failed, metrics=json.dumps(metrics, sort_keys=True),
               scoring_seconds=round(time.perf_counter() - t0, 2), attempts=attempts,
               scored_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return row


def shipped_row(job: dict, api) -> dict:
    """The row of a submission whose scores the publisher computed (validated by the
    service: its org, its evaluation version, the predictions file's sha256)."""
    from dismai_data.evaluation.api import parse_task

    sh = job["shipped"]
    ref_repo, ref_rev, ref_commit = reference_revision(api, parse_task(job["task"])[1])
    if sh["dataset_revision"] != ref_rev:  # scores of another reference than the one rows here use
        return failed_row(job, f"shipped scores are against {ref_repo}@{sh['dataset_revision']}; this hub scores "
                               f"against {ref_rev}: submit without them to be scored here") | {
            "dataset_repo": ref_repo, "dataset_revision": ref_rev, "dataset_commit": ref_commit}
    return base_row(job) | {
        "status": "scored", "reason": None, "dataset_repo": ref_repo, "dataset_revision": ref_rev,
        "dataset_commit": ref_commit, "evaluation_version": sh["evaluation_version"], "relaxed": sh["relaxed"],
        "relaxation_note": sh["relaxation_note"], "n_submitted": sh["n_submitted"], "n_accepted": sh["n_accepted"],
        "percent_failed": sh["percent_failed"], "metrics": json.dumps(sh["metrics"], sort_keys=True),
        "scoring_seconds": sh["scoring_seconds"], "attempts": 1, "scored_at": sh["scored_at"],
        "shipped_from": f"{sh['hardware']}; {sh['scored_at']}; {sh['command']}"[:2000]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default=None)
    ap.add_argument("--storage", default=None, help="hub storage folder (default: the one holding --job)")
    ap.add_argument("--attempts", type=int, default=1)
    ap.add_argument("--fail", default=None, help="record a failed row with this reason, no scoring")
    ap.add_argument("--no-commit", action="store_true")
    ap.add_argument("--no-relax", action="store_true")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("DISMAI_NO_PROGRESS", "1")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=a.endpoint, token=os.environ.get("HF_TOKEN"))
    job = json.loads(Path(a.job).read_text())
    work = Path(a.work) if a.work else Path(a.out).parent / "work"
    storage = Path(a.storage) if a.storage else Path(a.job).resolve().parents[2]
    if a.fail:
        row = failed_row(job, a.fail, a.attempts)
    else:
        if not a.no_commit:  # already on the leaderboard (a worker died after committing): nothing to score
            from .rows import read_rows
            from .store import withheld_row

            head, rows = read_rows(api)
            prior = next((r for r in rows if r["submission_id"] == job["id"]), None)
            if prior is None and withheld_row(storage, job["id"]) is not None:
                head, prior = None, withheld_row(storage, job["id"])
            if prior is not None:
                Path(a.out).write_text(json.dumps({"row": prior, "commit": head, "appended": False}))
                return 0
        if job.get("shipped") and not a.no_commit:  # scored once by the publisher; rescore recomputes
            row = shipped_row(job, api)
        else:
            row = score_job(job, api, work, relax=not a.no_relax, attempts=a.attempts, storage=storage)
    if a.no_commit:
        out = {"row": row, "commit": None, "appended": False}
    else:
        commit, stored, appended = record_row(api, storage, row)
        out = {"row": stored, "commit": commit, "appended": appended}
    tmp = Path(a.out + ".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
