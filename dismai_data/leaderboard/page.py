"""The leaderboard page: one sortable table per task with the columns of the papers' tables,
intervals, unrelaxed results marked, links to the model and predictions repos, failed
submissions with their reasons, and an inline-SVG radar chart of the ranks across the
Dismai datasets (as the Dismai-Bench paper's spider chart).

Server-rendered HTML; the only script is the small column sorter below, allowed by its
sha256 in the page's Content-Security-Policy (no other script can run).
"""

from __future__ import annotations

import base64
import hashlib
import math
from urllib.parse import quote

from jinja2 import Environment

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

SORTER = """document.querySelectorAll("table.lb").forEach(function(t){
t.querySelectorAll("th[data-k]").forEach(function(th,ci){th.addEventListener("click",function(){
var idx=Array.prototype.indexOf.call(th.parentNode.children,th);
var asc=th.getAttribute("aria-sort")!=="ascending";
t.querySelectorAll("th[data-k]").forEach(function(o){o.removeAttribute("aria-sort");});
th.setAttribute("aria-sort",asc?"ascending":"descending");
var tb=t.tBodies[0];var rows=Array.prototype.slice.call(tb.rows);
rows.sort(function(a,b){var x=a.cells[idx].getAttribute("data-v"),y=b.cells[idx].getAttribute("data-v");
var nx=parseFloat(x),ny=parseFloat(y);var ex=(x===null||x===""||isNaN(nx)),ey=(y===null||y===""||isNaN(ny));
if(ex||ey){if(ex&&ey){return (a.cells[idx].textContent).localeCompare(b.cells[idx].textContent)*(asc?1:-1);}return ex?1:-1;}
return asc?nx-ny:ny-nx;});
rows.forEach(function(r){tb.appendChild(r);});});});});"""
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SORTER.encode()).digest()).decode()
CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
       f"script-src 'sha256-{SCRIPT_HASH}'; base-uri 'none'; form-action 'self'")

env = Environment(autoescape=True)
env.filters["q"] = lambda s: quote(s, safe="/")

PAGE = env.from_string("""<h1>Leaderboard</h1>
<p class="muted">{{ n_scored }} scored and {{ n_failed }} failed submissions; queue: {{ queue.queued }} waiting,
{{ queue.claimed }} being scored. Lower is better except where marked ↑. Intervals are bootstrap 95 %
(value (+high/−low)). Rows from the <a href="/datasets/dismai/leaderboard">dismai/leaderboard</a> dataset (a private predictions
repo's row is shown only to who may read the repo, and joins the dataset when the repo is made public);
submit with <code>dismai submit --task TASK --predictions FILE --model-name NAME</code>.</p>
<h2 id="ranks">Ranks across the Dismai datasets</h2>
{{ chart|safe }}
<p class="muted small">One axis per Dismai dataset, ranked by its first metric (lower is better); the outer ring is
rank 1. A model's best submission counts; a dataset without a score sits at the centre.</p>
<p class="muted small" id="ranking-rule">Each table is ranked by its first column (the task's headline metric). A
submission whose headline metric is undefined, or with fewer than {{ floor_pct }} % of its structures accepted, is
listed after the ranked ones without a rank (–).</p>
{% for t in tables %}<h2 id="task-{{ t.task }}">{{ t.title }}</h2>
<table class="lb" data-task="{{ t.task }}"><thead><tr><th data-k="rank">rank</th><th data-k="model">model</th>
{% for c in t.columns %}<th data-k="{{ c.key }}" title="{{ c.key }}">{{ c.title }}{% if c.better == 'max' %} ↑{% endif %}</th>{% endfor %}
<th data-k="predictions">predictions</th><th data-k="submitter">submitter</th><th data-k="dataset">reference</th><th data-k="date">scored</th></tr></thead><tbody>
{% for r in t.rows %}<tr data-id="{{ r.id }}"><td data-v="{{ r.rank }}">{{ r.rank }}</td>
<td data-v="" class="model">{% if r.model_repo %}<a class="model-link" href="/{{ r.model_repo|q }}">{{ r.model_name }}</a>{% else %}{{ r.model_name }}{% endif %}{% if r.unrelaxed %}<span class="badge unrelaxed" title="{{ r.relaxation_note }}">unrelaxed</span>{% endif %}{% if r.shipped_from %}<span class="badge shipped" title="scored once by the publisher: {{ r.shipped_from }}; dismai leaderboard rescore {{ r.id }} recomputes it">shipped</span>{% endif %}{% if r.notes %}<div class="muted small">{{ r.notes }}</div>{% endif %}</td>
{% for c in r.cells %}<td data-v="{{ c.v }}">{{ c.text }}{% if c.ci %} <span class="ci">{{ c.ci }}</span>{% endif %}</td>{% endfor %}
<td data-v=""><a class="pred-link" href="/datasets/{{ r.predictions_repo|q }}/tree/{{ r.predictions_commit }}">{{ r.predictions_repo }}</a><div class="muted mono">{{ r.predictions_commit[:12] }}</div></td>
<td data-v="">{{ r.submitter }}</td><td data-v="">{{ r.dataset_repo }} {{ r.dataset_revision }}<div class="muted">eval {{ r.evaluation_version }}</div></td><td data-v="">{{ r.date }}</td></tr>{% endfor %}
</tbody></table>{% endfor %}
{% if not tables %}<p id="empty">No scored submissions yet.</p>{% endif %}
{% if failed %}<h2 id="failed">Failed submissions</h2><table id="failed-table"><tr><th>task</th><th>model</th><th>submission</th><th>reason</th><th>when</th></tr>
{% for r in failed %}<tr><td>{{ r.task }}</td><td>{{ r.model_name }}</td><td class="mono">{{ r.submission_id }}</td><td>{{ r.reason }}</td><td>{{ r.scored_at }}</td></tr>{% endfor %}</table>{% endif %}
<style>.ci{color:#656d76;font-size:12px;white-space:nowrap}.small{font-size:12px}th[data-k]{cursor:pointer}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}.unrelaxed{border-color:#bf8700;color:#9a6700}.shipped{border-color:#0969da;color:#0969da}</style>
<script>{{ script|safe }}</script>""")


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

    parts = [f'<svg id="rank-chart" xmlns="http://www.w3.org/2000/svg" width="{size + 240}" height="480" '
             f'viewBox="0 0 {size + 240} 480" role="img" aria-label="ranks across the Dismai datasets">']
    for ring in range(1, worst + 1):
        frac = (worst - ring + 1) / worst
        poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in (pt(i, frac) for i in range(k)))
        parts.append(f'<polygon points="{poly}" fill="none" stroke="#d0d7de"/>')
        x, y = pt(0, frac)
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 12:.1f}" font-size="10" fill="#656d76">{ring}</text>')
    for i, (task, metric) in enumerate(DISMAI_AXES):
        x, y = pt(i, 1.0)
        parts.append(f'<line x1="{cx}" y1="{cy}" x2="{x:.1f}" y2="{y:.1f}" stroke="#8c959f"/>')
        lx, ly = pt(i, 1.18)
        anchor = "middle" if abs(lx - cx) < 5 else ("start" if lx > cx else "end")
        # two lines (dataset; metric and count) so the side labels stay inside the chart
        parts.append(f'<text class="axis" x="{lx:.1f}" y="{ly:.1f}" font-size="12" text-anchor="{anchor}">'
                     f'{task}<tspan x="{lx:.1f}" dy="14" font-size="11" fill="#656d76">({metric}, '
                     f'n={n_on[task]})</tspan></text>')
    for j, model in enumerate(models):
        color = COLORS[j % len(COLORS)]
        pts = [pt(i, (worst - ranks[model][t] + 1) / worst if t in ranks[model] else 0.0)
               for i, (t, _) in enumerate(DISMAI_AXES)]
        poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        label = "; ".join(f"{t}: rank {ranks[model][t]}" if t in ranks[model] else f"{t}: not scored"
                          for t, _ in DISMAI_AXES)
        esc = env.from_string("{{ s }}").render
        parts.append(f'<polygon class="model" data-model="{esc(s=model)}" points="{poly}" fill="{color}" '
                     f'fill-opacity="0.12" stroke="{color}" stroke-width="2"><title>{esc(s=model + ": " + label)}'
                     f'</title></polygon>')
        ly = 30 + 20 * j
        parts.append(f'<rect x="{size + 10}" y="{ly - 10}" width="12" height="12" fill="{color}"/>'
                     f'<text x="{size + 28}" y="{ly}" font-size="12">{esc(s=model)}</text>')
    if not models:
        parts.append(f'<text x="{size + 10}" y="30" font-size="12" fill="#656d76">no scores on these datasets '
                     'yet</text>')
    parts.append("</svg>")
    return "".join(parts)


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
    return PAGE.render(floor_pct=f"{100 * _tasks.MIN_ACCEPTED_FRACTION:g}", tables=tables, failed=failed, chart=rank_chart(rows), queue=queue, script=SORTER,
                       n_scored=len(rows) - len(failed), n_failed=len(failed))
