"""benchmarks/review.py's honest reviewer: the recorded answer, anchored to the proposal."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from review import reviewer_answer


def test_a_blind_task_or_an_agreeing_proposal_gets_the_recorded_answer() -> None:
    rng = random.Random(0)
    assert all(reviewer_answer("a", None, 1.0, rng) == "a" for _ in range(50))
    assert all(reviewer_answer("a", "a", 0.0, rng) == "a" for _ in range(50))


def test_a_differing_proposal_is_confirmed_with_the_anchor_probability() -> None:
    rng = random.Random(1)
    given = [reviewer_answer("a", "b", 0.2, rng) for _ in range(4000)]
    confirmed = given.count("b") / len(given)
    assert set(given) == {"a", "b"}
    assert 0.17 < confirmed < 0.23  # 0.2, within about 3 standard errors
    assert {reviewer_answer("a", "b", 0.0, rng) for _ in range(50)} == {"a"}
