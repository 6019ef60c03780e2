"""The dataset folder format (answers.csv and gold.csv) that crowd demo --data and the
benchmarks read."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowd import datasets


def _folder(tmp_path: Path, answers: str, gold: str = "task,label\nt1,a\n") -> Path:
    (tmp_path / "answers.csv").write_text(answers)
    (tmp_path / "gold.csv").write_text(gold)
    return tmp_path


def test_columns_are_found_by_name_and_other_columns_left_out(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        'worker,seconds,label,task\nw1,3,a,t1\n\nw2,4,b,t1\nw1,5,"b,c",t2\nw1,6,a,t1\n',
        "label, task\nb,t1\n",
    )
    found = datasets.read(folder)
    assert found.name == tmp_path.name
    # file order, a worker's repeated answer kept, a blank line skipped, quoting honoured
    assert found.answers == [("t1", "w1", "a"), ("t1", "w2", "b"), ("t2", "w1", "b,c"),
                             ("t1", "w1", "a")]  # fmt: skip
    assert found.gold == {"t1": "b"}


def test_a_file_not_in_the_format_is_named_with_its_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "task,worker,label\nt1,w1,a\nt2,w1\n")
    with pytest.raises(ValueError, match=r"answers\.csv:3: expected 3 fields, got 2"):
        datasets.read(folder)
    _folder(tmp_path, "task,worker\nt1,w1\n")
    with pytest.raises(
        ValueError, match=r"must name the columns task,worker,label \(label missing"
    ):
        datasets.read(folder)
    (tmp_path / "gold.csv").unlink()  # a missing file is said before a malformed one
    with pytest.raises(FileNotFoundError, match=r"gold\.csv not found"):
        datasets.read(folder)
