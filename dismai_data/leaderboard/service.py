"""The hub side of the leaderboard: the submission API and reading the leaderboard rows
straight from the hub's storage (for the page and ``GET /api/leaderboard``).

API (JSON):

* ``POST /api/leaderboard/submissions`` (write token of the predictions repo's owner)
  ``{task, predictions_repo, predictions_commit, predictions_path, column?, model_name,
  model_repo?, notes?}`` -> 202 ``{submission_id, status: "queued", duplicate: false, ...}``,
  or 200 ``{..., duplicate: true}`` with the earlier submission of the same predictions
  content for that task.
* ``GET /api/leaderboard/submissions/{id}`` -> ``{submission_id, status, row?, ...}``.
* ``GET /api/leaderboard`` -> ``{rows: [...], queue: {queued, claimed, done}}``.

Rows and statuses are shown only to who may read the predictions repo; rows of repos that
are not public are not in ``dismai/leaderboard`` at all (:mod:`.store`).
"""

from __future__ import annotations

import hashlib
import json
import re

from dismai_data.hub.storage import HubError, RepoKey

from .queue import Queue
from .rows import DATA_PATH, REPO_ID

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+\-()]{0,95}$")
LB_KEY = RepoKey("dataset", *REPO_ID.split("/"))


def _bad(field: str, msg: str) -> HubError:
    return HubError(400, "InvalidSubmission", f"field '{field}': {msg}", extra={"field": field})


def content_sha256(tree: dict, path: str, column: str | None) -> str:
    """sha256 over the predictions' files (path relative to ``path`` and content sha256)
    and the column name: equal for the same predictions, whatever the repo or commit."""
    h = hashlib.sha256(f"column={column or ''}\n".encode())
    for p in sorted(tree):
        if p == path or p.startswith(path.rstrip("/") + "/"):
            h.update(f"{p[len(path):]}\t{tree[p]['blob']}\n".encode())
    return h.hexdigest()


SUBMISSION_FIELDS = {"task", "predictions_repo", "predictions_commit", "predictions_path", "model_name", "model_repo",
                     "notes", "column", "shipped"}


def validate_submission(hub, user, body) -> dict:
    """The job for a submission body, or a 4xx naming the field."""
    if user is None:
        raise HubError(401, "Unauthorized", "a write token is required to submit (Authorization: Bearer <token>)")
    if not isinstance(body, dict):
        raise HubError(400, "InvalidSubmission", "body must be a JSON object")
    unknown = sorted(str(k)[:40] for k in set(body) - SUBMISSION_FIELDS)
    if unknown:
        raise HubError(400, "InvalidSubmission", f"unknown field(s) {', '.join(map(repr, unknown))}; known: "
                                                 f"{', '.join(sorted(SUBMISSION_FIELDS))}")
    for f in ("task", "predictions_repo", "predictions_commit", "predictions_path", "model_name"):
        if not isinstance(body.get(f), str) or not body[f].strip():
            raise _bad(f, "is required (a non-empty string)")
    from dismai_data.evaluation.api import parse_task
    from dismai_data.evaluation.sources import EvaluationInputError

    try:
        parse_task(body["task"])
    except EvaluationInputError as exc:
        raise _bad("task", exc.reason) from None
    if not NAME_RE.match(body["model_name"]):
        raise _bad("model_name", "use 1-96 letters, digits, spaces and ._+-() (starting with a letter or digit)")
    repo = body["predictions_repo"]
    if repo.count("/") != 1:
        raise _bad("predictions_repo", f"{repo!r} is not owner/name")
    key = RepoKey("dataset", *repo.split("/"))
    meta = hub.storage.repo_meta(key)
    if meta is None or (meta["private"] and not user.may_read(key.ns)):
        raise _bad("predictions_repo", f"dataset repo {repo} not found on this hub")
    if not user.may_write(key.ns):
        raise HubError(403, "Forbidden", f"field 'predictions_repo': {user.name!r} may not submit predictions of "
                                         f"{key.ns!r} (a write token of the owner is needed)")
    commit = body["predictions_commit"]
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise _bad("predictions_commit", "must be a 40-hex commit sha")
    try:
        cid, tree = hub.storage.tree(key, commit)
    except HubError:
        raise _bad("predictions_commit", f"commit {commit} not found in {repo}") from None
    path = body["predictions_path"].strip("/")
    if not any(p == path or p.startswith(path + "/") for p in tree):
        raise _bad("predictions_path", f"{path!r} is not in {repo} at {commit[:12]}")
    column = body.get("column")
    if column is not None and not isinstance(column, str):
        raise _bad("column", "must be a string or null")
    model_repo = body.get("model_repo") or None
    if model_repo is not None:
        if not isinstance(model_repo, str) or model_repo.count("/") != 1:
            raise _bad("model_repo", f"{model_repo!r} is not owner/name")
        mk = RepoKey("model", *model_repo.split("/"))
        mmeta = hub.storage.repo_meta(mk)
        if mmeta is None or mmeta["private"]:
            raise _bad("model_repo", f"public model repo {model_repo} not found on this hub; publish it first or "
                                     "leave --model-repo out")
    notes = body.get("notes") or ""
    if not isinstance(notes, str) or len(notes) > 2000:
        raise _bad("notes", "must be a string of at most 2000 characters")
    job = {"task": body["task"].strip(), "predictions_repo": repo, "predictions_commit": cid,
           "predictions_path": path, "column": column, "model_name": body["model_name"].strip(),
           "model_repo": model_repo, "notes": notes, "submitter": user.name,
           "content_sha256": content_sha256(tree, path, column)}
    if body.get("shipped") is not None:
        job["shipped"] = validate_shipped(user, body["shipped"], tree.get(path), job["task"])
    return job


SHIPPED_FIELDS = {"metrics": dict, "n_submitted": int, "n_accepted": int, "percent_failed": (int, float),
                  "relaxed": bool, "relaxation_note": str, "evaluation_version": str, "scored_at": str,
                  "scoring_seconds": (int, float), "hardware": str, "command": str, "predictions_sha256": str,
                  "dataset_revision": str}


def validate_shipped(user, shipped, entry, task: str) -> dict:
    """Scores computed once by the leaderboard's publisher (org ``dismai``) on its own
    hardware, for the predictions file at ``predictions_path`` (its sha256 must be that
    file's), by an evaluation version whose numbers for ``task`` this hub's evaluation
    reproduces. Anyone else gets a 403."""
    from dismai_data.evaluation.result import EVALUATION_VERSION, reproduces

    from .rows import ORG

    if not user.may_write(ORG):
        raise HubError(403, "Forbidden", f"field 'shipped': only the leaderboard's publisher (a write token of org "
                                         f"{ORG!r}) may submit precomputed scores; submit without it to be scored here")
    if not isinstance(shipped, dict):
        raise _bad("shipped", "must be a JSON object")
    unknown = sorted(set(shipped) - set(SHIPPED_FIELDS))
    if unknown:
        raise _bad("shipped", f"unknown field(s) {', '.join(unknown)}; known: {', '.join(SHIPPED_FIELDS)}")
    for k, typ in SHIPPED_FIELDS.items():
        v = shipped.get(k)
        if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
            raise _bad("shipped", f"field {k!r} is missing or not of type {getattr(typ, '__name__', typ)}")
    if not reproduces(task, shipped["evaluation_version"]):
        raise _bad("shipped", f"scored with evaluation {shipped['evaluation_version']}; this hub scores {task} "
                              f"with {EVALUATION_VERSION}, which changed its numbers: rescore them")
    if entry is None or entry.get("blob") != shipped["predictions_sha256"]:
        raise _bad("shipped", "predictions_sha256 is not the sha256 of the file at predictions_path: these scores "
                              "are of other predictions")
    for name, m in shipped["metrics"].items():
        if not isinstance(name, str) or not isinstance(m, dict) or \
                not isinstance(m.get("value"), (int, float, type(None))):
            raise _bad("shipped", f"metrics[{str(name)[:40]!r}] must be an object with a numeric 'value'")
    return dict(shipped)


def submit(hub, user, body, endpoint: str) -> tuple[int, dict]:
    """Queue a submission. A private predictions repo is scored like any other; its row is
    withheld from ``dismai/leaderboard`` and shown only to who may read the repo until the
    repo is made public (:mod:`.store`)."""
    job = validate_submission(hub, user, body)
    stored, created = Queue(hub.storage.root).enqueue(job)
    if not created and not hub.repo_id_visible(stored.get("predictions_repo"), user):
        # the same predictions were submitted from a repo this user may not see: say so
        # without naming that submission, its model, submitter or repo
        raise HubError(409, "DuplicateSubmission", f"these predictions were already submitted for {job['task']} "
                                                   "from a repository you cannot see; not scored again")
    out = status(hub, stored["id"], endpoint)
    out["duplicate"] = not created
    if not created:
        out["message"] = (f"these predictions were already submitted for {job['task']} as {stored['id']} "
                          f"(model {stored.get('model_name')!r} by {stored.get('submitter')}); not scored again")
    return (202 if created else 200), out


def status(hub, sid: str, endpoint: str) -> dict:
    q = Queue(hub.storage.root)
    job = q.job(sid)
    if job is None:
        raise HubError(404, "SubmissionNotFound", f"no submission {sid!r}")
    state, details = q.state(sid)
    out = {"submission_id": sid, "status": state, "task": job["task"], "model_name": job["model_name"],
           "submitter": job["submitter"], "submitted_at": job["submitted_at"],
           "predictions_repo": job["predictions_repo"], "predictions_commit": job["predictions_commit"],
           "leaderboard_url": f"{endpoint}/leaderboard", "status_url": f"{endpoint}/api/leaderboard/submissions/{sid}"}
    if state in ("scored", "failed"):
        out["reason"] = details.get("reason")
        out["leaderboard_commit"] = details.get("leaderboard_commit")
        row = next((r for r in leaderboard_rows(hub.storage) if r["submission_id"] == sid), None)
        if row is not None:
            out["row"] = rows_json([row])[0]
    elif state == "scoring":
        out["attempt"] = details.get("attempts")
    return out


_cache: dict[str, list[dict]] = {}


def leaderboard_rows(storage) -> list[dict]:
    """Every row: those of ``dismai/leaderboard`` at main, read from the storage (cached by
    blob), then the withheld rows of predictions repos that are not public
    (:mod:`.store`). Callers show each row only to who may read its predictions repo."""
    from .store import withheld_rows

    rows = list(_published_rows(storage))
    have = {r["submission_id"] for r in rows}
    return rows + [r for r in withheld_rows(storage.root) if r["submission_id"] not in have]


def _published_rows(storage) -> list[dict]:
    try:
        _, tree = storage.tree(LB_KEY, "main")
    except HubError:
        return []
    e = tree.get(DATA_PATH)
    if e is None:
        return []
    rows = _cache.get(e["blob"])
    if rows is None:
        import pyarrow.parquet as pq

        rows = pq.read_table(storage.blob_path(e["blob"])).to_pylist()
        _cache.clear()
        _cache[e["blob"]] = rows
    return rows


def rows_json(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        r = dict(r)
        try:
            r["metrics"] = json.loads(r.get("metrics") or "{}")
        except ValueError:
            pass
        out.append(r)
    return out
