"""``crowd aggregate --type multilabel|numeric|pairwise``: output formats, gold, input errors."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crowd.cli import main

MULTILABEL = """task,worker,labels
t1,w1,cat|dog
t1,w2,cat
t1,w3,cat|dog
t2,w1,
t2,w2,dog
t2,w3,
"""

NUMERIC = """task,worker,value
t1,w1,4
t1,w2,5
t1,w3,4.5
t2,w1,1
t2,w2,2
t2,w3,1.5
"""

# a > b > c in one group; d and e in another.
PAIRWISE = """left,right,worker,winner
a,b,w1,a
b,c,w1,b
c,a,w2,a
b,a,w2,a
d,e,w1,e
"""


def run(tmp_path: Path, content: str, *args: str) -> Result:
    path = tmp_path / "answers.csv"
    path.write_text(content)
    return CliRunner().invoke(main, ["aggregate", str(path), *args])


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def assert_input_error(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert message in result.stderr, result.stderr


def test_multilabel_writes_task_and_pipe_joined_labels(tmp_path: Path) -> None:
    result = run(tmp_path, MULTILABEL, "--type", "multilabel", "--proba")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "task,labels,p_cat,p_dog"
    out = rows(result.stdout)
    assert [r["task"] for r in out] == ["t1", "t2"]
    assert out[0]["labels"] == "cat|dog"
    assert out[1]["labels"] == ""  # the empty set is a result too
    assert all(0.0 <= float(r[c]) <= 1.0 for r in out for c in ("p_cat", "p_dog"))


def test_multilabel_gold_and_workers_out(tmp_path: Path) -> None:
    gold = write(tmp_path, "gold.csv", "task,labels\nt2,dog\n")
    workers = tmp_path / "workers.csv"
    result = run(
        tmp_path,
        MULTILABEL,
        "--type",
        "multilabel",
        "--gold",
        gold,
        "--workers-out",
        str(workers),
    )
    assert result.exit_code == 0, result.output
    assert rows(result.stdout)[1]["labels"] == "dog"
    table = rows(workers.read_text())
    assert list(table[0]) == ["worker", "sensitivity", "specificity", "answers"]
    assert [r["answers"] for r in table] == ["2", "2", "2"]
    bad = write(tmp_path, "bad.csv", "task,labels\nt2,owl\n")
    assert_input_error(
        run(tmp_path, MULTILABEL, "--type", "multilabel", "--gold", bad),
        "bad.csv:2: label set 'owl' names a label that no answer",
    )


def test_numeric_writes_value_and_interval(tmp_path: Path) -> None:
    result = run(tmp_path, NUMERIC, "--type", "numeric")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "task,value,lower,upper"
    out = rows(result.stdout)
    assert [r["task"] for r in out] == ["t1", "t2"]
    for row, (low, high) in zip(out, [(4, 5), (1, 2)], strict=True):
        assert low <= float(row["value"]) <= high
        assert float(row["lower"]) < float(row["value"]) < float(row["upper"])


def test_numeric_values_python_reads_but_arrow_does_not(tmp_path: Path) -> None:
    result = run(tmp_path, "task,worker,value\nt1,w1, 4\nt1,w2,1_000\n", "--type", "numeric")
    assert result.exit_code == 0, result.output
    assert 4 <= float(rows(result.stdout)[0]["value"]) <= 1000


def test_numeric_gold_is_held(tmp_path: Path) -> None:
    gold = write(tmp_path, "gold.csv", "task,value\nt1,4.25\nt9,1\n")
    out = rows(run(tmp_path, NUMERIC, "--type", "numeric", "--gold", gold).stdout)
    assert out[0]["value"] == "4.25" and out[0]["lower"] == out[0]["upper"] == "4.25"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("task,worker,value\nt1,w1,4\nt1,w2,high\n", "answers.csv:3: value 'high' is not a finite"),
        ("task,worker,value\nt1,w1,nan\n", "answers.csv:2: value 'nan' is not a finite"),
        ("task,worker,label\nt1,w1,4\n", "answers.csv:1: missing column 'value'"),
        ("task,worker,value\nt1,w1,\n", "answers.csv:2: empty value"),
    ],
)
def test_numeric_input_errors(tmp_path: Path, content: str, message: str) -> None:
    assert_input_error(run(tmp_path, content, "--type", "numeric"), message)


def test_pairwise_writes_ranked_items_per_component(tmp_path: Path) -> None:
    result = run(tmp_path, PAIRWISE, "--type", "pairwise")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "item,score,rank,component,comparisons"
    out = rows(result.stdout)
    assert [(r["item"], r["rank"], r["component"]) for r in out] == [
        ("a", "1", "0"),
        ("b", "2", "0"),
        ("c", "3", "0"),
        ("e", "1", "1"),
        ("d", "2", "1"),
    ]
    assert [r["comparisons"] for r in out] == ["3", "3", "2", "1", "1"]
    assert "position bias" in result.stderr
    assert "2 separate groups" in result.stderr


def test_pairwise_gold_comparisons(tmp_path: Path) -> None:
    gold = write(tmp_path, "gold.csv", "left,right,winner\nd,e,d\nd,e,d\nd,e,d\n")
    out = rows(run(tmp_path, PAIRWISE, "--type", "pairwise", "--gold", gold).stdout)
    assert [r["item"] for r in out if r["component"] == "1"] == ["d", "e"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("left,right,worker,winner\na,b,w,c\n", "answers.csv:2: winner 'c' is neither"),
        ("left,right,worker,winner\na,b,w,a\na,a,w,a\n", "answers.csv:3: left and right are"),
        ("left,right,worker\na,b,w\n", "answers.csv:1: missing column 'winner'"),
    ],
)
def test_pairwise_input_errors(tmp_path: Path, content: str, message: str) -> None:
    assert_input_error(run(tmp_path, content, "--type", "pairwise"), message)


def test_options_that_do_not_apply_to_a_type_are_refused(tmp_path: Path) -> None:
    assert_input_error(
        run(tmp_path, NUMERIC, "--type", "numeric", "--method", "ds"),
        "--method applies to --type categorical only",
    )
    assert_input_error(
        run(tmp_path, NUMERIC, "--type", "numeric", "--smoothing", "1"),
        "--smoothing does not apply to --type numeric",
    )
    assert_input_error(
        run(tmp_path, PAIRWISE, "--type", "pairwise", "--proba"),
        "--proba applies to --type categorical and multilabel",
    )
    ok = run(tmp_path, NUMERIC, "--type", "numeric", "--max-iter", "3", "--tol", "0")
    assert ok.exit_code == 0 and "did not converge in max_iter=3" in ok.stderr


def test_header_only_files_give_header_only_results(tmp_path: Path) -> None:
    for answer_type, content, header in [
        ("multilabel", "task,worker,labels\n", "task,labels"),
        ("numeric", "task,worker,value\n", "task,value,lower,upper"),
        ("pairwise", "left,right,worker,winner\n", "item,score,rank,component,comparisons"),
    ]:
        result = run(tmp_path, content, "--type", answer_type)
        assert result.exit_code == 0, result.output
        assert result.stdout == header + "\n"
