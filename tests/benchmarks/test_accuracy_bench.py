"""benchmarks/accuracy.py's --reveal-gold mode: revealed gold is clamped, never scored."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import accuracy


@pytest.fixture
def crowd(tmp_path: Path) -> Path:
    """Ten tasks every worker labels "x" (one also gets a "y"); the gold says "y" for all, so
    an unclamped majority vote is right on none of them and a clamped one only on the
    revealed ones."""
    folder = tmp_path / "data" / "tiny"
    folder.mkdir(parents=True)
    rows = [f"t{j},w{w},x" for j in range(10) for w in range(3)] + ["t0,w3,y"]
    (folder / "answers.csv").write_text("task,worker,label\n" + "\n".join(rows) + "\n")
    (folder / "gold.csv").write_text("task,label\n" + "".join(f"t{j},y\n" for j in range(10)))
    return tmp_path / "data"


def test_revealed_gold_is_clamped_but_never_scored(crowd: Path, capsys) -> None:
    args = ["--data", str(crowd), "--methods", "mv", "--crowdkit"]
    accuracy.main([*args, "--reveal-gold", "0.5", "--seed", "0", "1"])
    out = capsys.readouterr().out
    gold_table = out[out.index("With 50% of each dataset's gold revealed") :]
    # Scored on the five unrevealed rows only: 0 right (columns: mv, the oracle).
    assert "| tiny | 0.0000 | 0.0000 |" in gold_table
    data = accuracy.load(crowd / "tiny")
    fit = accuracy.run_ours(data, "mv", accuracy.reveal(10, 0.5, 0))
    assert fit.right.sum() == 5  # the clamped rows are right: they just are not counted


def test_the_revealed_rows_and_the_choice_are_the_same_for_a_seed(crowd: Path) -> None:
    first, again = accuracy.reveal(100, 0.1, 3), accuracy.reveal(100, 0.1, 3)
    np.testing.assert_array_equal(first, again)
    assert first.size == 10 and np.unique(first).size == 10
    assert not np.array_equal(first, accuracy.reveal(100, 0.1, 4))
    data = accuracy.load(crowd / "tiny")
    runs = [accuracy.run_ours(data, "auto", accuracy.reveal(10, 0.5, 0)) for _ in range(2)]
    assert runs[0].chosen == runs[1].chosen == "hds"
    np.testing.assert_array_equal(runs[0].right, runs[1].right)
