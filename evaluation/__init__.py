"""dismai-data evaluation: every benchmark's metrics on any predictions source.

Standalone: it uses :mod:`dismai_data.schema` / :mod:`~dismai_data.structure` /
:mod:`~dismai_data.io` (and :mod:`dismai_data.physics.ce` for the alloys) and scientific
libraries, never the hub, the builders or the models.

>>> from dismai_data.evaluation import evaluate
>>> result = evaluate("carbon-24", "preds.parquet", reference="datasets/carbon-24", out="eval/")
>>> result.metrics["match_rate"].value
"""

if __name__ != "dismai_data.evaluation":  # the checkout root on sys.path makes this folder importable as 'evaluation'
    raise ImportError(f"{__name__!r} is the checkout folder evaluation/: it is installed as dismai_data.evaluation; "
                      "import that (a second copy would share, and break, the first one's numba cache)")

from .result import EVALUATION_VERSION, EvaluationResult, Metric

__version__ = EVALUATION_VERSION


def evaluate(*args, **kwargs) -> EvaluationResult:
    from .api import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = ["evaluate", "EvaluationResult", "Metric", "EVALUATION_VERSION"]
