"""The model's prediction as each task's prior in the Dawid-Skene E-step (stretch goal).

Raykar et al. (2010) replace Dawid-Skene's class prior ``p_k`` with a classifier's
``P(z_j = k | x_j)``, so a task with one or two answers leans on what its features say::

    log q_j(k) = log P_model(k | x_j) + sum_{i in j} log pi[w_i, k, l_i] - log Z_j

This module computes that E-step from a fitted Dawid-Skene model's confusion matrices. It is
measured offline (benchmarks/model_prior.py) and not yet used by the live aggregation.

V. C. Raykar, S. Yu, L. H. Zhao, G. H. Valadez, C. Florin, L. Bogoni and L. Moy. Learning
from crowds. *Journal of Machine Learning Research* 11 (2010), 1297-1322.
"""

from __future__ import annotations

import numpy as np

#: Probabilities are floored here before the log, so no label is ever impossible.
FLOOR = 1e-10


def posteriors_with_prior(
    tasks: np.ndarray,
    workers: np.ndarray,
    labels: np.ndarray,
    confusion: np.ndarray,
    task_prior: np.ndarray,
) -> np.ndarray:
    """Posteriors ``(n_tasks, K)`` of the E-step above.

    Args:
        tasks, workers, labels: ``(n_answers,)`` integer indices (as from ``crowd.em.encode``).
        confusion: ``(n_workers, K, K)``, ``confusion[w, k, l]`` = P(w says l | true k).
        task_prior: ``(n_tasks, K)``, the model's class probabilities per task (rows sum to 1);
            a task with no answers gets its prior back.
    """
    log_post = np.log(np.maximum(np.asarray(task_prior, dtype=np.float64), FLOOR))
    per_answer = np.log(np.maximum(confusion[workers, :, labels], FLOOR))  # (n_answers, K)
    np.add.at(log_post, tasks, per_answer)
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    return post / post.sum(axis=1, keepdims=True)
