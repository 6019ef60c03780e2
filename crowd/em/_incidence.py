"""The answers as a sparse task x (worker, label) incidence matrix: the two EM sums in one call each.

Every confusion-matrix model needs two sums over answers per iteration:

* E-step, per task ``t`` and true class ``k``: ``sum_{i: tasks[i]=t} log_table[workers[i]*K + labels[i], k]``
* M-step, per (worker, given label) cell and true class ``k``: ``sum_{i} posteriors[tasks[i], k]``

With ``A`` the ``(n_tasks, n_workers*K)`` matrix holding one 1 per answer (repeated answers
add up), those are ``A @ log_table`` and ``A.T @ posteriors``. SciPy's CSR/CSC kernels compute
both in one pass over the answers without any ``(n_answers, K)`` temporary, which is what
makes an iteration on millions of answers take tens of milliseconds. Memory is
``O(n_answers + n_tasks)``: 12 bytes per answer plus the row pointer.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crowd.em._base import Answers, FloatArray, IntArray


class AnswerMatrix:
    """Incidence matrix of validated answers, built once per fit.

    Attributes:
        csr: ``(n_tasks, n_workers * n_classes)`` CSR matrix, one unit entry per answer.
        answered: ``(n_tasks,)`` bool, tasks with at least one answer.
        worker_answers: ``(n_workers,)`` int, answers given by each worker.
    """

    def __init__(self, answers: Answers) -> None:
        k = answers.n_classes
        self.n_tasks = answers.n_tasks
        self.n_workers = answers.n_workers
        self.n_classes = k
        self.n_answers = answers.n_answers
        n_cols = answers.n_workers * k
        index_dtype = np.int32 if max(n_cols, self.n_tasks, self.n_answers) < 2**31 else np.int64

        cells = answers.workers * k + answers.labels
        coo = sp.coo_matrix(
            (
                np.ones(self.n_answers),
                (answers.tasks.astype(index_dtype), cells.astype(index_dtype)),
            ),
            shape=(self.n_tasks, n_cols),
        )
        # tocsr() groups answers by task with an O(n) counting sort. Declaring the COO canonical
        # skips sum_duplicates (sorting each task's entries and merging repeats), which the two
        # products do not need: repeated entries simply add up. This is 3x faster than argsort.
        coo.has_canonical_format = True
        self.csr = coo.tocsr()
        del coo
        self._csc_t = self.csr.T  # (n_cols, n_tasks) CSC view sharing the same arrays
        self.answered = np.diff(self.csr.indptr) > 0
        used = np.bincount(cells, minlength=n_cols).reshape(self.n_workers, k) > 0
        used[~used.any(axis=1)] = True
        #: ``(n_workers, K)`` bool: worker ``w`` gave label ``l`` at least once (all True for a
        #: worker without answers).
        self.used_cells = used
        self.worker_answers: IntArray = np.bincount(
            answers.workers, minlength=self.n_workers
        ).astype(np.intp)

    def task_sums(self, log_table: FloatArray, offset: FloatArray) -> FloatArray:
        """E-step sum plus a per-class offset, class-major.

        ``log_table`` ``(n_workers*K, K)``, ``offset`` ``(K,)`` -> new array ``(K, n_tasks)``
        with ``out[k, t] = offset[k] + sum_{answers i of t} log_table[cell_i, k]``.
        """
        by_task = np.asarray(self.csr @ log_table)
        # order="C": the transposed input would otherwise make the result task-major.
        return np.add(by_task.T, offset[:, None], order="C")

    def cell_sums(self, posteriors: FloatArray) -> FloatArray:
        """M-step sum. Class-major ``posteriors`` ``(K, n_tasks)`` -> counts ``(n_workers, K, K)``.

        ``counts[w, k, l]`` is the posterior mass of true class ``k`` over the answers where
        worker ``w`` said ``l``.
        """
        k = self.n_classes
        flat = np.asarray(self._csc_t @ posteriors.T)  # (n_workers*K_given, K_true)
        return np.ascontiguousarray(flat.reshape(self.n_workers, k, k).transpose(0, 2, 1))


def log_table(confusion: FloatArray) -> FloatArray:
    """``confusion`` ``(n_workers, K_true, K_given)`` -> ``(n_workers*K_given, K_true)`` of logs."""
    n_workers, k, _ = confusion.shape
    # A zero is allowed only in a cell no answer uses; its -inf is never read by task_sums.
    with np.errstate(divide="ignore"):
        logs = np.log(confusion)
    return np.ascontiguousarray(logs.transpose(0, 2, 1).reshape(n_workers * k, k))
