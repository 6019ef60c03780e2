"""Models trained on the aggregated labels: pure scikit-learn helpers, no I/O and no SQL.

:mod:`crowd.learn.model` builds, fits and applies a project's model; :mod:`crowd.learn.calibrate`
picks the auto-labelling threshold on gold. The job that reads and writes the database is
:func:`crowd.background.training.train`.
"""

from crowd.learn.calibrate import calibrate_threshold, wilson_lower
from crowd.learn.model import (
    ModelSpec,
    dump,
    extract,
    fit,
    gold_metrics,
    load,
    predict,
    soft_targets,
    summarize,
)
from crowd.learn.prior import posteriors_with_prior

__all__ = [
    "ModelSpec",
    "calibrate_threshold",
    "dump",
    "extract",
    "fit",
    "gold_metrics",
    "load",
    "posteriors_with_prior",
    "predict",
    "soft_targets",
    "summarize",
    "wilson_lower",
]
