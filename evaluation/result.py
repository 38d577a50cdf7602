"""The result object of an evaluation: a versioned, JSON-serialisable pydantic model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, Field

#: Version of the evaluation code (bumped whenever a number it reports can change; the task
#: registry's ``scores_since`` names, per task, the version that last changed that task's numbers).
EVALUATION_VERSION = "0.3.0"
#: Version of the JSON layout of :class:`EvaluationResult`.
RESULT_SCHEMA_VERSION = 1


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def reproduces(task: str, version: str | None) -> bool:
    """Whether this evaluation computes, for ``task``, the numbers evaluation ``version`` computed:
    ``version`` is no older than the task's ``scores_since`` (the task registry) and no newer than
    this evaluation. Scores shipped for an unchanged task stay valid across a release that changed
    another task's protocol; an unknown task or a malformed version never reproduces."""
    from dismai_data import tasks

    try:
        since = tasks.get(task).scores_since
        return _version_key(since) <= _version_key(str(version)) <= _version_key(EVALUATION_VERSION)
    except (KeyError, ValueError):
        return False


class Metric(BaseModel):
    """One number with its bootstrap 95 % pivotal interval.

    ``error_low = p97.5 - value`` and ``error_high = value - p2.5`` of the bootstrap
    distribution (the interval is ``[value - error_low, value + error_high]``); both are
    null where no interval applies (e.g. a count) or too few values exist.
    """

    value: Optional[float]
    error_low: Optional[float] = None
    error_high: Optional[float] = None
    n: int = Field(0, description="number of values the metric is computed from")
    unit: str = ""
    description: str = ""

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.value is None or self.error_low is None or self.error_high is None:
            return None
        return (self.value - self.error_low, self.value + self.error_high)


class DatasetRef(BaseModel):
    id: str
    revision: Optional[str] = None
    config: Optional[str] = None
    split: str
    source: str = Field(description="local folder or hub id the reference rows were read from")
    num_rows: int


class Counts(BaseModel):
    submitted: int = Field(description="prediction rows / structures read (plus missing ids for reconstruction)")
    accepted: int
    failed: int
    percent_failed: float = Field(description="100 - 100 * accepted / submitted")
    failure_reasons: dict[str, int] = Field(default_factory=dict)


class EvaluationResult(BaseModel):
    result_schema_version: int = RESULT_SCHEMA_VERSION
    evaluation_version: str = EVALUATION_VERSION
    task: str
    relaxed: bool = Field(description="false: structures scored as submitted (--no-relax or a task without "
                                      "relaxation); the label appears in every figure title too")
    relaxation_note: str = ""
    predictions: dict[str, Any]
    reference: DatasetRef
    train_reference: Optional[DatasetRef] = None
    counts: Counts
    metrics: dict[str, Metric]
    groups: dict[str, Any] = Field(default_factory=dict, description="per-class breakdowns (crystal systems...)")
    settings: dict[str, Any]
    files: dict[str, str] = Field(default_factory=dict, description="what was written: name -> path")
    seconds: float = 0.0

    def to_json(self, path: str | Path | None = None) -> str:
        text = self.model_dump_json(indent=1)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "EvaluationResult":
        p = Path(str(text_or_path))
        text = p.read_text() if len(str(text_or_path)) < 4096 and p.exists() else str(text_or_path)
        return cls.model_validate(json.loads(text))
