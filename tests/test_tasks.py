"""The task registry (dismai_data/tasks.py) and the ranking rule the leaderboard applies."""

from __future__ import annotations

import json

import pytest

from dismai_data import tasks
from dismai_data.evaluation.api import known_tasks, parse_task
from dismai_data.evaluation.sources import EvaluationInputError


def test_every_task_defined_once_with_headline_and_protocol():
    assert known_tasks() == tasks.task_names() and len(set(known_tasks())) == len(known_tasks())
    for t in tasks.TASKS.values():
        assert t.headline in t.metric and t.columns[0] == t.headline
        assert t.headline_spec.better in ("min", "max")
        assert all(c in t.metric for c in t.columns)
        assert t.protocol.cleanup and t.protocol.relaxation and t.protocol.samples
        assert parse_task(t.name) == (t.kind, t.dataset, t.config)
    assert tasks.get("alloy/300K_wide").protocol.cleanup_id == "cryingan"
    assert [a for a, _ in tasks.DISMAI_AXES] == ["interface", "a-si", "alloy/300K_wide", "alloy/300K_narrow",
                                                 "alloy/1500K_wide", "alloy/1500K_narrow"]
    with pytest.raises(EvaluationInputError, match="unknown task"):
        parse_task("alloy/400K_wide")


def _row(task, sid, metrics, n_sub, n_acc, at):
    return {"task": task, "status": "scored", "submission_id": sid, "model_name": sid, "predictions_repo": "u/p",
            "predictions_commit": "c" * 40, "submitter": "u", "metrics": json.dumps(metrics),
            "n_submitted": n_sub, "n_accepted": n_acc, "scored_at": at}


def test_undefined_headline_or_low_acceptance_never_ranked_above_a_scored_one():
    from dismai_data.leaderboard import page

    task = "alloy/300K_wide"
    failed = _row(task, "all-failed", {"d_cluster": {"value": None}, "percent_failed": {"value": 100.0}}, 100, 0,
                  "2026-01-01")
    # alone on its task: listed, but without rank 1
    assert [(r, x["submission_id"]) for r, x in page.ranked([failed], task)] == [(None, "all-failed")]
    few = _row(task, "5-percent", {"d_cluster": {"value": 0.001}, "percent_failed": {"value": 95.0}}, 100, 5,
               "2026-01-02")
    good = _row(task, "good", {"d_cluster": {"value": 0.05}, "percent_failed": {"value": 0.0}}, 100, 100,
                "2026-01-03")
    better = _row(task, "better", {"d_cluster": {"value": 0.04}, "percent_failed": {"value": 9.0}}, 100, 91,
                  "2026-01-04")
    out = [(r, x["submission_id"]) for r, x in page.ranked([failed, few, good, better], task)]
    assert out == [(1, "better"), (2, "good"), (None, "all-failed"), (None, "5-percent")]
    # the page shows "–" for them and says why
    html = page.render([failed, few, good, better], {"queued": 0, "claimed": 0})
    assert 'id="ranking-rule"' in html and "10 %" in html
    # the rank chart counts only ranked rows
    assert "all-failed: rank" not in page.rank_chart([failed, few, good])
    # a max-better headline: reconstruction match_rate
    rows = [_row("perov-5", "a", {"match_rate": {"value": 0.2}}, 10, 10, "1"),
            _row("perov-5", "b", {"match_rate": {"value": 0.5}}, 10, 10, "2"),
            _row("perov-5", "c", {"match_rate": {"value": 0.9}}, 10, 0, "3")]
    assert [(r, x["submission_id"]) for r, x in page.ranked(rows, "perov-5")] == [(1, "b"), (2, "a"), (None, "c")]


def test_rank_order_ties_and_floor_from_percent_failed():
    t = tasks.get("a-si")
    ms = [{"d_motif": {"value": 0.1}, "percent_failed": {"value": 0.0}},
          {"d_motif": {"value": 0.1}, "percent_failed": {"value": 50.0}},
          {"d_motif": {"value": 0.05}, "percent_failed": {"value": 95.0}},
          {"d_motif": {"value": float("nan")}, "percent_failed": {"value": 0.0}}]
    assert tasks.rank_order(t, [(m, None, None) for m in ms]) == [1, 1, None, None]
    # without any count (a published number entered by hand) only the headline decides
    assert tasks.rank_order(t, [({"d_motif": {"value": 0.2}}, None, None), (ms[0], 10, 10)]) == [2, 1]


def test_model_card_and_leaderboard_columns_come_from_the_registry():
    from dismai_data.leaderboard import page
    from dismai_data.models import publish

    for name, t in tasks.TASKS.items():
        assert [c[0] for c in page.COLUMNS[name]] == list(t.columns)
        assert publish._scalar_keys(name)[-1] == "percent_failed"
        assert set(publish._scalar_keys(name)) <= set(t.metric)
    assert publish._alloy_tasks() == [f"alloy/{c}" for c in tasks.ALLOY_CONFIGS]
