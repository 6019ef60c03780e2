"""A project's model: what it reads from task data, how it is fitted and applied.

Text: hashed word uni- and bigrams, TF-IDF weighted, into a multinomial logistic regression.
Hashing keeps the vocabulary out of the fitted state, so the stored model stays small and
prediction streams in batches. Features: standardised numbers into the same classifier.
Training targets are soft: a task contributes one row per label it may have, weighted by
the label's posterior (see :func:`soft_targets`).
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

#: Posteriors below this are left out of the soft targets (they add rows, not information).
MIN_WEIGHT = 0.01


@dataclass(frozen=True)
class ModelSpec:
    """A project's ``model`` setting: ``input`` is ``text`` or ``features``; ``field`` is the
    key of task data the model reads (a string, or a list of numbers)."""

    input: str
    field: str

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> ModelSpec | None:
        return None if value is None else cls(str(value["input"]), str(value["field"]))

    @property
    def kind(self) -> str:
        """A short name of the estimator, recorded with each version."""
        if self.input == "text":
            return "text:hashing-tfidf+logistic-regression"
        return "features:standard-scaler+logistic-regression"


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def extract(
    spec: ModelSpec, values: Sequence[Any], dim: int | None = None
) -> tuple[np.ndarray, Any, int | None]:
    """Model inputs from the raw field values of some tasks (None where a task lacks it).

    Returns ``(usable, X, dim)``: a ``(n,)`` bool mask of the tasks the model can read, the
    inputs of those tasks (a list of strings, or a ``(m, dim)`` float array), and the feature
    length. Text must be a non-empty string. Features must be a list of finite numbers of
    length ``dim``; with ``dim`` None it is the most common length among the values.
    """
    if spec.input == "text":
        usable = np.array([isinstance(v, str) and v.strip() != "" for v in values], dtype=bool)
        return usable, [v for v, ok in zip(values, usable, strict=True) if ok], None
    lists = [
        v if isinstance(v, list) and v and all(_number(x) for x in v) else None for v in values
    ]
    if dim is None:
        lengths = Counter(len(v) for v in lists if v is not None)
        dim = lengths.most_common(1)[0][0] if lengths else None
    usable = np.array([v is not None and len(v) == dim for v in lists], dtype=bool)
    rows = [v for v, ok in zip(lists, usable, strict=True) if ok]
    X = np.array(rows, dtype=np.float64).reshape(len(rows), dim or 0)
    return usable, X, dim


def soft_targets(posteriors: np.ndarray, min_weight: float = MIN_WEIGHT) -> tuple[np.ndarray, ...]:
    """Expand ``(n, K)`` posteriors into weighted rows: ``(row, label, weight)``, one per task
    and label with posterior ``>= min_weight`` (``row`` indexes the tasks)."""
    rows, labels = np.nonzero(np.asarray(posteriors) >= min_weight)
    return rows, labels, np.asarray(posteriors)[rows, labels].astype(np.float64)


def _estimator(spec: ModelSpec, random_state: int) -> Pipeline:
    classifier = LogisticRegression(C=4.0, max_iter=500, random_state=random_state)
    if spec.input == "text":
        return make_pipeline(
            HashingVectorizer(ngram_range=(1, 2), n_features=2**18, alternate_sign=False),
            TfidfTransformer(sublinear_tf=True),
            classifier,
        )
    return make_pipeline(StandardScaler(), classifier)


def _take(X: Any, index: np.ndarray) -> Any:
    return X[index] if isinstance(X, np.ndarray) else [X[i] for i in index.tolist()]


def fit(spec: ModelSpec, X: Any, posteriors: np.ndarray, *, random_state: int = 0) -> Pipeline:
    """Fit the model on inputs ``X`` (from :func:`extract`) and their ``(n, K)`` label
    posteriors (one-hot for hard labels). Raises ValueError when the targets hold fewer than
    two labels: a classifier needs both sides of a boundary."""
    rows, labels, weights = soft_targets(posteriors)
    if np.unique(labels).size < 2:
        raise ValueError(
            "training needs complete tasks of at least two labels; "
            f"got {len(posteriors)} tasks, all labelled alike"
        )
    model = _estimator(spec, random_state)
    step = model.steps[-1][0]
    model.fit(_take(X, rows), labels, **{f"{step}__sample_weight": weights})
    return model


def predict(model: Pipeline, X: Any, n_classes: int) -> np.ndarray:
    """``(n, K)`` class probabilities; labels the model never saw get probability 0."""
    n = X.shape[0] if isinstance(X, np.ndarray) else len(X)
    out = np.zeros((n, n_classes))
    if n:
        out[:, model.classes_] = model.predict_proba(X)
    return out


def summarize(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(label, confidence, margin)`` of ``(n, K)`` probabilities: the top label, its
    probability, and its lead over the runner-up (low margin: the model is unsure)."""
    top2 = -np.sort(-proba, axis=1)[:, :2]
    return proba.argmax(axis=1), top2[:, 0], top2[:, 0] - top2[:, 1]


def gold_metrics(proba: np.ndarray, gold: np.ndarray) -> dict[str, float | int | None]:
    """Accuracy and log-loss (natural log, probabilities clipped at 1e-15) on gold tasks."""
    n = int(gold.size)
    if n == 0:
        return {"gold_accuracy": None, "gold_log_loss": None, "gold_tasks": 0}
    p = np.clip(proba[np.arange(n), gold], 1e-15, 1.0)
    return {
        "gold_accuracy": float(np.mean(proba.argmax(axis=1) == gold)),
        "gold_log_loss": float(-np.mean(np.log(p))),
        "gold_tasks": n,
    }


def dump(model: Pipeline) -> bytes:
    """The fitted pipeline as joblib bytes (stored in ``model_versions.model``)."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


def load(blob: bytes) -> Pipeline:
    """A pipeline stored by :func:`dump`. Only load bytes this service wrote: joblib is pickle."""
    model: Pipeline = joblib.load(io.BytesIO(blob))
    return model
