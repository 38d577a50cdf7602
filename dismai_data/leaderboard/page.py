"""The leaderboard page: one sortable table per task with the columns of the papers' tables,
intervals, unrelaxed results marked, links to the model and predictions repos, failed
submissions with their reasons, and an inline-SVG radar chart of the ranks across the
Dismai datasets (as the Dismai-Bench paper's spider chart).

Server-rendered HTML from ``templates/page.html.j2`` and ``templates/rank_chart.svg.j2``; the
only script is the small column sorter ``templates/sorter.js``, allowed by its sha256 in the
page's Content-Security-Policy (no other script can run).
"""

from __future__ import annotations

import base64
import hashlib
import math
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader

from dismai_data import tasks as _tasks

from .rows import metrics_of

#: task -> [(metric key, column title, better)]; the first column is the headline that ranks the
#: table (all from the task registry, :mod:`dismai_data.tasks`)
COLUMNS = {t.name: [(k, t.metric[k].title, t.metric[k].better or "min") for k in t.columns]
           for t in _tasks.TASKS.values()}
TITLES = {t.name: t.description for t in _tasks.TASKS.values() if t.kind in ("interface", "a-si")}
#: the axes of the rank chart and the metric each is ranked by
DISMAI_AXES = _tasks.DISMAI_AXES
COLORS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#1b7c83", "#e16f24", "#6e7781"]

TEMPLATES = Path(__file__).parent / "templates"
#: the column sorter, the page's only script (allowed by its hash in CSP)
SORTER = (TEMPLATES / "sorter.js").read_text(encoding="utf-8").removesuffix("\n")
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SORTER.encode()).digest()).decode()
CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
       f"script-src 'sha256-{SCRIPT_HASH}'; base-uri 'none'; form-action 'self'")

env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
env.filters["q"] = lambda s: quote(s, safe="/")
PAGE = env.get_template("page.html.j2")
CHART = env.get_template("rank_chart.svg.j2")


def family(task: str) -> str:
    t = _tasks.TASKS.get(task)
    return t.kind if t is not None else "reconstruction"


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def _signed(x: float) -> str:
    """An offset from the value with its sign (a pivotal bootstrap bound can lie on the
    other side of the value: then the sign says so)."""
    return ("−" if x < 0 else "+") + fmt(abs(x))


def _cell(m: dict | None) -> dict:
    if not m or m.get("value") is None:
        return {"v": "", "text": "–", "ci": ""}
    ci = ""
    if m.get("error_low") is not None and m.get("error_high") is not None:
        ci = f"({_signed(m['error_high'])}/{_signed(-m['error_low'])})"
    return {"v": repr(float(m["value"])), "text": fmt(m["value"]), "ci": ci}


def _columns(task: str) -> list[tuple[str, str, str]]:
    return COLUMNS.get(task) or [("percent_failed", "% failed", "min")]


def ranked(rows: list[dict], task: str) -> list[tuple[int | None, dict]]:
    """Scored rows of ``task`` in rank order, with their rank (ties share a rank). The
    registry's rule (:func:`dismai_data.tasks.rank_order`): a row whose headline metric is
    undefined or whose accepted fraction is under the task's floor has rank None and comes
    after every ranked row."""
    scored = [r for r in rows if r["task"] == task and r["status"] == "scored"]
    scored.sort(key=lambda r: r.get("scored_at") or "")
    if task not in _tasks.TASKS:
        return [(None, r) for r in scored]
    ranks = _tasks.rank_order(task, [(metrics_of(r), r.get("n_submitted"), r.get("n_accepted")) for r in scored])
    order = sorted(range(len(scored)), key=lambda i: (ranks[i] is None, ranks[i] or 0, i))
    return [(ranks[i], scored[i]) for i in order]


def task_order(tasks: set[str]) -> list[str]:
    from dismai_data.evaluation.api import known_tasks

    known = known_tasks()
    return sorted(tasks, key=lambda t: (known.index(t) if t in known else len(known), t))


def rank_chart(rows: list[dict]) -> str:
    """Inline SVG radar chart: one polygon per model, one axis per Dismai dataset; outer ring =
    rank 1. A model's best submission counts; a dataset it has no score on sits at the centre."""
    ranks: dict[str, dict[str, int]] = {}
    n_on: dict[str, int] = {}
    for task, _ in DISMAI_AXES:
        best: dict[str, int] = {}
        for rank, r in ranked(rows, task):
            if rank is not None:
                best.setdefault(r["model_name"], rank)
        n_on[task] = len(best)
        for model, rank in best.items():
            ranks.setdefault(model, {})[task] = rank
    models = sorted(ranks)
    worst = max([len(models), 1])
    size, cx, cy, R = 800, 400, 240, 165
    k = len(DISMAI_AXES)

    def pt(i: int, frac: float) -> tuple[float, float]:
        a = -math.pi / 2 + 2 * math.pi * i / k
        return cx + R * frac * math.cos(a), cy + R * frac * math.sin(a)

    def poly(points) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)

    rings = []
    for ring in range(1, worst + 1):
        frac = (worst - ring + 1) / worst
        x, y = pt(0, frac)
        rings.append({"poly": poly(pt(i, frac) for i in range(k)), "x": f"{x + 4:.1f}", "y": f"{y + 12:.1f}",
                      "ring": ring})
    axes = []
    for i, (task, metric) in enumerate(DISMAI_AXES):
        x, y = pt(i, 1.0)
        lx, ly = pt(i, 1.18)
        # two lines (dataset; metric and count) so the side labels stay inside the chart
        axes.append({"x": f"{x:.1f}", "y": f"{y:.1f}", "lx": f"{lx:.1f}", "ly": f"{ly:.1f}",
                     "anchor": "middle" if abs(lx - cx) < 5 else ("start" if lx > cx else "end"),
                     "task": task, "metric": metric, "n": n_on[task]})
    out = []
    for j, model in enumerate(models):
        pts = [pt(i, (worst - ranks[model][t] + 1) / worst if t in ranks[model] else 0.0)
               for i, (t, _) in enumerate(DISMAI_AXES)]
        label = "; ".join(f"{t}: rank {ranks[model][t]}" if t in ranks[model] else f"{t}: not scored"
                          for t, _ in DISMAI_AXES)
        out.append({"name": model, "color": COLORS[j % len(COLORS)], "poly": poly(pts), "label": label,
                    "ly": 30 + 20 * j})
    return CHART.render(width=size + 240, cx=cx, cy=cy, legend_x=size + 10, rings=rings, axes=axes, models=out)


def render(rows: list[dict], queue: dict) -> str:
    tables = []
    for task in task_order({r["task"] for r in rows if r["status"] == "scored"}):
        fam = family(task)
        cols = [{"key": k, "title": t, "better": b} for k, t, b in _columns(task)]
        out = []
        for rank, r in ranked(rows, task):
            m = metrics_of(r)
            out.append({"id": r["submission_id"], "rank": "–" if rank is None else rank, "model_name": r["model_name"],
                        "model_repo": r.get("model_repo"), "notes": r.get("notes"),
                        "unrelaxed": fam in ("interface", "a-si") and not r.get("relaxed"),
                        "relaxation_note": r.get("relaxation_note") or "", "shipped_from": r.get("shipped_from"),
                        "cells": [_cell(m.get(c["key"])) for c in cols],
                        "predictions_repo": r["predictions_repo"], "predictions_commit": r["predictions_commit"],
                        "submitter": r["submitter"], "dataset_repo": r.get("dataset_repo") or "",
                        "dataset_revision": r.get("dataset_revision") or "",
                        "evaluation_version": r.get("evaluation_version") or "",
                        "date": (r.get("scored_at") or "")[:16].replace("T", " ")})
        tables.append({"task": task, "title": TITLES.get(task, task), "columns": cols, "rows": out})
    failed = [r for r in rows if r["status"] != "scored"]
    return PAGE.render(floor_pct=f"{100 * _tasks.MIN_ACCEPTED_FRACTION:g}", tables=tables, failed=failed,
                       chart=rank_chart(rows), queue=queue, script=SORTER, n_scored=len(rows) - len(failed),
                       n_failed=len(failed))
