"""The auto-labelling threshold: the lowest model confidence whose labels reach a target
accuracy on gold, with a margin for the size of the sample."""

from __future__ import annotations

import numpy as np

from crowd.em.intervals import Z_95, wilson_lower

__all__ = ["Z_95", "calibrate_threshold", "wilson_lower"]


def calibrate_threshold(
    confidence: np.ndarray,
    correct: np.ndarray,
    target: float,
    *,
    min_support: int = 20,
    z: float = Z_95,
) -> float | None:
    """The lowest threshold ``t`` such that the gold tasks with ``confidence >= t`` are right
    at a rate whose Wilson lower bound (one-sided, ``z``) is at least ``target``, among
    thresholds kept by at least ``min_support`` gold tasks. None when no threshold qualifies.

    Args:
        confidence: ``(n,)`` the model's probability of its predicted label on each gold task.
        correct: ``(n,)`` bool, whether that label equals the gold label.
        target: the accuracy auto-labels must reach, in (0, 1].

    Judging each candidate by its lower bound rather than its observed accuracy is what makes
    the threshold hold on gold it was not calibrated on: auto-labelling with it reaches the
    target unless the calibration sample was unusually lucky (about 5% of the time at the
    boundary, less away from it).
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape or conf.ndim != 1:
        raise ValueError("confidence and correct must be 1-D arrays of one length")
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    hits = np.cumsum(ok)
    best: float | None = None
    # Candidates are the distinct confidences; a tie block is kept or dropped as a whole.
    last_of_block = np.r_[conf[1:] != conf[:-1], True] if conf.size else np.zeros(0, bool)
    for i in np.flatnonzero(last_of_block):
        n = int(i) + 1
        if n >= min_support and wilson_lower(int(hits[i]), n, z) >= target:
            best = float(conf[i])
    return best
