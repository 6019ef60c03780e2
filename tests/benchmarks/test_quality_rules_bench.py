"""benchmarks/quality_rules.py runs the live run's fit on its own snapshots: when the
snapshot grows a field, the benchmark must still build one (it once stopped with a
TypeError, so the issue-13 figures could not be reproduced)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality_rules


def test_both_rule_sets_are_simulated_and_reported(capsys) -> None:
    quality_rules.main(["--projects", "1", "--tasks", "60", "--workers", "12"])
    out = capsys.readouterr().out
    assert "| today (point estimate) |" in out
    assert "| evidence (posterior" in out
    assert "goal: projects banning an honest worker" in out
