"""encode: ids to indices once, class order, decoding."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.em import class_order, encode


def test_encode_round_trips_ids() -> None:
    tasks = np.array(["t2", "t1", "t2", "t3"])
    workers = np.array(["w9", "w1", "w1", "w9"])
    labels = np.array(["cat", "dog", "cat", "bird"])
    enc = encode(tasks, workers, labels)
    np.testing.assert_array_equal(enc.task_index[enc.tasks], tasks)
    np.testing.assert_array_equal(enc.worker_index[enc.workers], workers)
    np.testing.assert_array_equal(enc.decode_labels(enc.labels), labels)
    assert list(enc.classes) == ["bird", "cat", "dog"]
    assert (enc.n_tasks, enc.n_workers, enc.n_classes) == (3, 2, 3)
    gold_tasks, gold_labels = enc.encode_gold(["t3", "t1"], ["dog", "bird"])
    np.testing.assert_array_equal(gold_tasks, [2, 0])
    np.testing.assert_array_equal(gold_labels, [2, 0])
    with pytest.raises(KeyError, match="unknown label 'fish'"):
        enc.encode_labels(["fish"])
    with pytest.raises(KeyError, match="unknown label 'catfish'"):
        enc.encode_labels(["catfish"])


def test_numeric_labels_sort_numerically() -> None:
    assert list(class_order(np.array(["10", "2", "1"]))) == ["1", "2", "10"]
    assert list(class_order(np.array(["10", "2", "x"]))) == ["10", "2", "x"]
    assert list(class_order(np.array([3, 1, 2]))) == [1, 2, 3]
    enc = encode(np.array(["a", "b"]), np.array(["u", "u"]), np.array(["10", "9"]))
    np.testing.assert_array_equal(enc.labels, [1, 0])


def test_encode_empty() -> None:
    enc = encode(np.array([], dtype=str), np.array([], dtype=str), np.array([], dtype=str))
    assert enc.tasks.shape == (0,) and enc.n_classes == 0
