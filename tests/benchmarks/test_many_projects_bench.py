"""benchmarks/many_projects.py: how it measures freshness and reads its configurations."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import many_projects


def test_an_answer_is_fresh_at_the_publish_of_the_first_run_started_after_its_201() -> None:
    # project 1: runs (created, started, finished) at 10-12 and 13-15; project 2: none
    runs = {1: [(9.0, 10.0, 12.0, "incremental"), (12.5, 13.0, 15.0, "incremental")]}
    acked = [(1, 9.5), (1, 10.0), (1, 11.0), (1, 13.5), (2, 20.0)]
    waits, unpublished = many_projects.freshness(acked, runs, end=30.0)
    # 9.5: the run started at 10 (ends 12); 10.0 and 11.0: started before or at it -> the
    # next run (ends 15); 13.5: none after it, nor for project 2: unpublished, waited till end
    assert waits == [2.5, 5.0, 4.0, 16.5, 10.0]
    assert unpublished == 2


def test_configurations_name_the_queue_order_and_the_reserved_worker() -> None:
    assert many_projects.parse_config("fixed", 4) == (0, False)
    assert many_projects.parse_config("fair", 4) == (4, False)
    assert many_projects.parse_config("fair:16+reserve", 4) == (16, True)
    with pytest.raises(ValueError):
        many_projects.parse_config("fair:x", 4)


def test_small_project_sizes_span_the_range_asked_for() -> None:
    sizes = many_projects.small_sizes(100, 1000, 50_000)
    assert len(sizes) == 100 and sizes[0] == 1000 and sizes[-1] == 50_000
    assert sizes == sorted(sizes)
