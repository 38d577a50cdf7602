"""Submitting predictions (``dismai submit``), over HTTP only, with the stock
``huggingface_hub`` client and the hub's small leaderboard API.

Steps: (1) check the task name; (2) read the predictions with the evaluation module's own
reader (file-level problems: format, columns, duplicate ids); (3) for reconstruction
tasks, compare the ids with the reference split ``test`` of ``dismai/<dataset>`` (missing
and extra ids are rejected, naming the first few), for every task reject a file in which
no row is a valid structure; only then (4) upload the file(s) unchanged to the dataset
repo ``<you>/<model-name>-<task>-predictions`` under ``predictions/`` and (5) POST the
submission; the hub queues it (or answers with the earlier id of identical predictions).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from dismai_data.errors import DismaiError


class SubmissionError(DismaiError, ValueError):
    """A submission rejected before (or by) the hub, with what to fix."""


def _api(endpoint: str, token: str | None):
    from dismai_data.hub.publish import hf_api

    return hf_api(endpoint, token)


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return s[:80] or "model"


def reference_ids(api, dataset: str, split: str = "test") -> tuple[str, list[str]]:
    """``("dismai/<dataset>@<rev>", ids of the split)``: downloads only that split's parquet
    files and reads their ``id`` column."""
    import pyarrow.parquet as pq
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    from .score import reference_revision

    try:
        repo, rev, commit = reference_revision(api, dataset)
    except RepositoryNotFoundError:
        raise SubmissionError(f"task reference dataset dismai/{dataset} is not published on {api.endpoint}; "
                              "publish it first (dismai main / dismai publish)") from None
    files = [f for f in api.list_repo_files(repo, repo_type="dataset", revision=commit)
             if f.endswith(".parquet") and f.rsplit("/", 1)[-1].startswith(f"{split}-")]
    if not files:
        raise SubmissionError(f"dismai/{dataset}@{rev} has no {split!r} split to score against")
    ids: list[str] = []
    for f in sorted(files):
        p = hf_hub_download(repo, f, repo_type="dataset", revision=commit, endpoint=api.endpoint, token=api.token)
        ids.extend(str(i) for i in pq.read_table(p, columns=["id"]).column("id").to_pylist())
    return f"{repo}@{rev}", ids


def check_predictions(api, task: str, predictions: str | os.PathLike, column: str | None = None) -> dict:
    """Validate before anything is uploaded; returns a summary or raises SubmissionError."""
    from dismai_data.evaluation.api import parse_task
    from dismai_data.evaluation.sources import EvaluationInputError, read_predictions

    try:
        kind, dataset, _ = parse_task(task)
    except EvaluationInputError as exc:
        raise SubmissionError(f"--task: {exc.reason}") from None
    try:
        ps = read_predictions(predictions, column=column, symmetry=False)
    except EvaluationInputError as exc:
        raise SubmissionError(f"--predictions: {exc}") from None
    n = len(ps.items)
    bad = [it for it in ps.items if not it.ok]
    summary = {"rows": n, "invalid_rows": len(bad), "format": ps.format}
    if len(bad) == n:
        first = "; ".join(f"row {it.id!r}: {it.reason}" for it in bad[:3])
        raise SubmissionError(f"--predictions {predictions}: none of the {n} rows is a valid structure ({first}); "
                              "fix the structures (species, frac_coords, lattice) before submitting")
    if kind == "reconstruction":
        where, ids = reference_ids(api, dataset)
        got = [it.id for it in ps.items]
        want = set(ids)
        missing = [i for i in ids if i not in set(got)]
        extra = [i for i in got if i not in want]
        problems = []
        if missing:
            problems.append(f"{len(missing)} of the {len(ids)} ids of split 'test' of {where} have no prediction "
                            f"(first: {missing[:5]}); add a row for every test id")
        if extra:
            problems.append(f"{len(extra)} prediction ids are not in split 'test' of {where} (first: {extra[:5]}); "
                            "remove them or use the reference row ids in column 'id'")
        if problems:
            raise SubmissionError(f"--predictions {predictions}: " + "; ".join(problems))
        summary["reference"] = where
    if bad:
        summary["warning"] = (f"{len(bad)} of {n} rows are not valid structures and will count as failed "
                              f"(first: row {bad[0].id!r}: {bad[0].reason})")
    return summary


def api_request(method: str, url: str, token: str | None, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:
            return e.code, {"error": raw.decode(errors="replace")[:500]}


def _upload(api, repo_id: str, predictions: str, task: str, model_name: str, model_repo: str | None) -> tuple[str, str]:
    """Upload the predictions unchanged under ``predictions/``; ``(commit, path in repo)``."""
    src = Path(predictions)
    with tempfile.TemporaryDirectory(prefix="dismai-submit-") as tmp:
        root = Path(tmp)
        (root / "predictions").mkdir()
        if src.is_dir():
            import shutil

            path = f"predictions/{slug(src.name)}"
            shutil.copytree(src, root / path, ignore=shutil.ignore_patterns(".*"))
        elif src.exists():
            path = f"predictions/{slug(src.stem)}{src.suffix.lower()}"
            (root / path).write_bytes(src.read_bytes())
        else:  # a hub id: the rows it holds, as parquet
            import pyarrow as pa
            import pyarrow.parquet as pq

            from dismai_data.evaluation.sources import load_hub, split_hub_id

            repo, rev = split_hub_id(str(predictions))
            path = "predictions/predictions.parquet"
            pq.write_table(pa.Table.from_pylist(load_hub(repo, rev, "test", None, str(predictions))), root / path)
        (root / "README.md").write_text(
            f"---\nlicense: other\ntags:\n- dismai-leaderboard-submission\n---\n# {model_name} on {task}\n\n"
            f"Predictions submitted to the Dismai leaderboard for task `{task}` (file `{path}`)."
            + (f" Model: [{model_repo}](/{model_repo})." if model_repo else "") + "\n")
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=False)
        info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(root),
                                 delete_patterns=["predictions/**"],
                                 commit_message=f"Predictions of {model_name} for {task}")
    commit = info.oid
    if not commit or not re.fullmatch(r"[0-9a-f]{40}", commit):
        commit = api.dataset_info(repo_id).sha
    return commit, path


def submit_predictions(endpoint: str, token: str, task: str, predictions: str | os.PathLike, model_name: str,
                       model_repo: str | None = None, notes: str = "", column: str | None = None,
                       shipped: dict | None = None) -> dict:
    """Validate, upload and queue; returns the hub's answer ``{submission_id, status,
    duplicate, leaderboard_url, status_url, ...}`` plus ``validation``. ``shipped``: scores
    the publisher computed once for exactly this file (``models.publish.shipped_record``;
    the hub accepts them from org ``dismai`` only)."""
    if not endpoint:
        raise SubmissionError("no hub endpoint: pass --endpoint or set HF_ENDPOINT")
    if not token:
        raise SubmissionError("no token: pass --token or set HF_TOKEN (a write token: dismai hub token create)")
    endpoint = endpoint.rstrip("/")
    api = _api(endpoint, token)
    try:
        user = api.whoami()["name"]
    except Exception as exc:
        raise SubmissionError(f"the hub at {endpoint} did not accept the token: {exc}") from None
    if model_repo:
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            api.model_info(model_repo)
        except RepositoryNotFoundError:
            raise SubmissionError(f"--model-repo: model repo {model_repo} not found on {endpoint}; publish it "
                                  "first or leave --model-repo out") from None
    if not model_name or not re.match(r"^[A-Za-z0-9][A-Za-z0-9 ._+\-()]{0,95}$", model_name):
        raise SubmissionError("--model-name: use 1-96 letters, digits, spaces and ._+-() (starting with a letter "
                              "or digit)")
    summary = check_predictions(api, task, predictions, column)
    repo_id = f"{user}/{slug(model_name)}-{slug(task.replace('/', '-'))}-predictions"
    commit, path = _upload(api, repo_id, str(predictions), task, model_name, model_repo)
    code, out = api_request("POST", f"{endpoint}/api/leaderboard/submissions", token,
                      {"task": task, "predictions_repo": repo_id, "predictions_commit": commit,
                       "predictions_path": path, "column": column, "model_name": model_name,
                       "model_repo": model_repo, "notes": notes, **({"shipped": shipped} if shipped else {})})
    if code not in (200, 202):
        raise SubmissionError(f"the hub rejected the submission ({code}): {out.get('error', out)}")
    out["validation"] = summary
    out["predictions_url"] = f"{endpoint}/datasets/{repo_id}"
    return out


def wait_for(endpoint: str, submission_id: str, timeout: float = 3600, poll: float = 1.0,
             token: str | None = None) -> dict:
    """Poll the submission until it is scored or failed; TimeoutError after ``timeout``. The
    status of a private predictions repo's submission needs a token that may read the repo."""
    deadline = time.time() + timeout
    while True:
        code, out = api_request("GET", f"{endpoint.rstrip('/')}/api/leaderboard/submissions/{submission_id}", token)
        if code != 200:
            raise SubmissionError(f"submission {submission_id}: {out.get('error', out)}")
        if out["status"] in ("scored", "failed"):
            return out
        if time.time() > deadline:
            raise TimeoutError(f"submission {submission_id} is still {out['status']} after {timeout:.0f} s "
                               f"(is the scoring worker running? dismai leaderboard worker)")
        time.sleep(poll)


def submit_and_wait(endpoint: str, token: str, task: str, predictions: str | os.PathLike, model_name: str,
                    model_repo: str | None = None, notes: str = "", column: str | None = None,
                    timeout: float = 3600, shipped: dict | None = None) -> dict:
    """Submit and wait until scored: the final status (with ``row``, ``leaderboard_url``,
    ``duplicate``). For ``dismai main`` after the baselines are generated."""
    sub = submit_predictions(endpoint, token, task, predictions, model_name, model_repo, notes, column, shipped)
    done = wait_for(endpoint, sub["submission_id"], timeout, token=token)
    done["duplicate"] = sub.get("duplicate", False)
    done["validation"] = sub.get("validation")
    return done
