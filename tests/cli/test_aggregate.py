"""``crowd aggregate`` and ``crowd evaluate`` end to end, including every input error."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crowd.cli import main

# Worker w3 is unreliable; task "t,4" has a comma in its id.
ANSWERS = """task,worker,label
t1,w1,cat
t1,w2,cat
t1,w3,dog
t2,w1,dog
t2,w2,dog
t2,w3,cat
t3,w1,bird
t3,w2,cat
t3,w3,bird
"t,4",w1,cat
"t,4",w3,dog
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def answers(tmp_path: Path) -> Path:
    path = tmp_path / "answers.csv"
    path.write_text(ANSWERS)
    return path


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def assert_input_error(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("crowd: error: ")
    assert message in result.stderr, result.stderr


def test_aggregate_writes_one_row_per_task_in_first_seen_order(answers: Path) -> None:
    result = run("aggregate", str(answers), "--method", "ds")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "task,label,confidence"
    out = rows(result.stdout)
    assert [r["task"] for r in out] == ["t1", "t2", "t3", "t,4"]
    assert [r["label"] for r in out[:3]] == ["cat", "dog", "bird"]
    assert all(0.0 < float(r["confidence"]) <= 1.0 for r in out)


def test_the_default_says_which_method_it_chose_and_why(answers: Path, tmp_path: Path) -> None:
    default = run("aggregate", str(answers))
    hds = run("aggregate", str(answers), "--method", "hds")
    assert (
        default.exit_code == 0 and default.stdout == hds.stdout
    )  # no gold: the label-free default
    assert (
        default.stderr
        == "crowd: auto chose hds: no gold task has answers, so none can show another method "
        "better: the label-free default\n"
    )
    gold = write(tmp_path, "gold.csv", "task,label\nt1,cat\nt2,dog\n")
    with_gold = run("aggregate", str(answers), "--gold", gold)
    assert with_gold.exit_code == 0, with_gold.output
    assert with_gold.stderr.startswith("crowd: auto chose hds: the default: on 2 gold tasks ")
    assert "sign test p = " in with_gold.stderr and hds.stderr == ""


def test_proba_columns_follow_class_order_and_sum_to_one(answers: Path) -> None:
    out = rows(run("aggregate", str(answers), "--proba").stdout)
    assert list(out[0]) == ["task", "label", "confidence", "p_bird", "p_cat", "p_dog"]
    for row in out:
        probabilities = [float(row[c]) for c in ("p_bird", "p_cat", "p_dog")]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert float(row["confidence"]) == max(probabilities)


def test_out_and_workers_out_files(answers: Path, tmp_path: Path) -> None:
    out, workers = tmp_path / "results.csv", tmp_path / "workers.csv"
    result = run(
        "aggregate",
        str(answers),
        "--method",
        "mv",
        "--out",
        str(out),
        "--workers-out",
        str(workers),
    )
    assert result.exit_code == 0 and result.stdout == ""
    assert len(rows(out.read_text())) == 4
    table = rows(workers.read_text())
    assert list(table[0]) == ["worker", "accuracy", "answers"]
    assert {r["worker"]: int(r["answers"]) for r in table} == {"w1": 4, "w2": 3, "w3": 4}
    accuracy = {r["worker"]: float(r["accuracy"]) for r in table}
    assert accuracy["w1"] > accuracy["w3"]


def test_gold_clamps_its_tasks(answers: Path, tmp_path: Path) -> None:
    gold = write(tmp_path, "gold.csv", "task,label\nt1,dog\nunknown-task,cat\n")
    for method in ("mv", "ds", "onecoin"):
        out = rows(run("aggregate", str(answers), "--method", method, "--gold", gold).stdout)
        assert (out[0]["label"], float(out[0]["confidence"])) == ("dog", 1.0), method
        assert len(out) == 4  # the gold task absent from the answers is ignored


def test_numeric_labels_tie_to_lowest_number(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "task,worker,label\nt,a,10\nt,b,9\n")
    out = rows(run("aggregate", path, "--method", "mv", "--proba").stdout)
    assert out == [{"task": "t", "label": "9", "confidence": "0.5", "p_9": "0.5", "p_10": "0.5"}]


def test_quoted_newline_in_an_id_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", 'task,worker,label\n"two\nlines",w,x\nt2,w,y\n')
    out = rows(run("aggregate", path).stdout)
    assert [r["task"] for r in out] == ["two\nlines", "t2"]


def test_header_only_file_gives_header_only_results(tmp_path: Path) -> None:
    result = run("aggregate", write(tmp_path, "a.csv", "task,worker,label\n"))
    assert result.exit_code == 0 and result.stdout == "task,label,confidence\n"


def test_options_reach_the_estimator(answers: Path) -> None:
    result = run("aggregate", str(answers), "--method", "ds", "--max-iter", "1", "--progress")
    assert result.exit_code == 0
    assert "ds iteration 1: objective" in result.stderr
    assert "crowd: warning: DawidSkene did not converge" in result.stderr
    assert_input_error(
        run("aggregate", str(answers), "--method", "mv", "--smoothing", "1"),
        "--smoothing does not apply to method mv",
    )


def test_evaluate_counts_missing_gold_tasks_as_wrong(tmp_path: Path) -> None:
    results = write(tmp_path, "r.csv", "task,label,confidence\nt1,cat,0.9\nt2,dog,0.8\nt3,cat,1\n")
    gold = write(tmp_path, "g.csv", "task,label\nt1,cat\nt2,dog\nt3,bird\nt9,cat\n")
    result = run("evaluate", results, gold)
    assert result.exit_code == 0
    assert result.stdout == "accuracy 0.5000 (2/4 gold tasks)\n"
    assert "1 gold tasks are missing" in result.stderr


def test_aggregate_then_evaluate(answers: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    assert run("aggregate", str(answers), "--out", str(out)).exit_code == 0
    gold = write(tmp_path, "g.csv", "task,label\nt1,cat\nt2,dog\n")
    assert run("evaluate", str(out), gold).stdout == "accuracy 1.0000 (2/2 gold tasks)\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "a.csv: empty file; expected a header line task,worker,label"),
        ("\n\n", "a.csv: empty file"),
        ("task,worker\nt,w\n", "a.csv:1: missing column 'label'"),
        (
            "task,worker,label\nt1,w,x\nt2,w\n",
            "a.csv:3: expected 3 fields (task,worker,label), got 2",
        ),
        (
            "task,worker,label\nt1,w,x\n\nt2,w,y,z\n",
            "a.csv:4: expected 3 fields (task,worker,label), got 4",
        ),
        ("task,worker,label\nt1,w,x\nt2,,x\n", "a.csv:3: empty worker"),
        ('task,worker,label\nt1,w,""\n', "a.csv:2: empty label"),
    ],
)
def test_malformed_answers(tmp_path: Path, content: str, message: str) -> None:
    assert_input_error(run("aggregate", write(tmp_path, "a.csv", content)), message)


def test_invalid_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"task,worker,label\nt1,w,x\nt2,w,\xff\n")
    assert_input_error(run("aggregate", str(path)), "a.csv:3: label is not valid UTF-8")


def test_missing_file(tmp_path: Path) -> None:
    assert_input_error(run("aggregate", str(tmp_path / "nope.csv")), "nope.csv: No such file")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("task,label\nt1,cat\nt2,fish\n", "g.csv:3: label 'fish' does not occur in"),
        ("task,label\nt1,cat\nt1,dog\n", "g.csv:3: task 't1' listed again (first at line 2)"),
        ("task\nt1\n", "g.csv:1: missing column 'label'"),
        ("task,label\nt1\n", "g.csv:2: expected 2 fields (task,label), got 1"),
    ],
)
def test_malformed_gold(answers: Path, tmp_path: Path, content: str, message: str) -> None:
    gold = write(tmp_path, "g.csv", content)
    assert_input_error(run("aggregate", str(answers), "--gold", gold), message)


def test_evaluate_errors(tmp_path: Path) -> None:
    results = write(tmp_path, "r.csv", "task,label\nt1,cat\n")
    assert_input_error(
        run("evaluate", results, write(tmp_path, "g.csv", "task,label\n")), "no gold rows"
    )
    assert_input_error(
        run("evaluate", write(tmp_path, "bad.csv", "task\nt1\n"), results),
        "bad.csv:1: missing column 'label'",
    )


def test_console_script_help() -> None:
    crowd = Path(sys.executable).with_name("crowd")
    for command in ("aggregate", "evaluate"):
        done = subprocess.run(
            [str(crowd), command, "--help"], capture_output=True, text=True, check=True
        )
        assert "Usage: crowd " + command in done.stdout


def test_answers_from_stdin_and_results_from_a_pipe(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["aggregate", "-", "--method", "mv"], input=ANSWERS)
    assert result.exit_code == 0 and len(rows(result.stdout)) == 4
    gold = write(tmp_path, "g.csv", "task,label\nt1,cat\nt2,cat\n")
    crowd = str(Path(sys.executable).with_name("crowd"))
    done = subprocess.run(
        f"{crowd} aggregate - --method mv | {crowd} evaluate /dev/stdin {gold}",
        shell=True,
        input=ANSWERS,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "accuracy 0.5000 (1/2 gold tasks)\n"


def test_stdin_errors_name_stdin() -> None:
    result = CliRunner().invoke(main, ["aggregate", "-"], input="task,worker,label\nt,w\n")
    assert_input_error(result, "<stdin>:2: expected 3 fields")


def test_large_inputs_report_progress_without_a_terminal(
    answers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crowd.cli.aggregate as aggregate_cli

    quiet = run("aggregate", str(answers), "--method", "ds")
    assert quiet.exit_code == 0 and "reading" not in quiet.stderr
    monkeypatch.setattr(aggregate_cli, "LARGE_INPUT_BYTES", answers.stat().st_size)
    loud = run("aggregate", str(answers), "--method", "ds")
    assert loud.exit_code == 0
    assert "crowd: reading" in loud.stderr and "ds iteration 1" in loud.stderr
    assert loud.stdout == quiet.stdout


def test_predictions_vote_as_models_that_are_not_workers(tmp_path: Path) -> None:
    """One person per task and a model that says "a" everywhere, "b" tasks included: with the
    model's matrix anchored by gold, the person outvotes it on "b"."""
    truth = {f"t{i}": "ab"[i % 2] for i in range(20)}
    answers = write(
        tmp_path,
        "answers.csv",
        "task,worker,label\n"
        + "".join(f"{t},w{i // 10},{y}\n" for i, (t, y) in enumerate(truth.items())),
    )
    predictions = write(
        tmp_path,
        "predictions.csv",
        "task,model,label\n"
        + "".join(f"{t},always-a,a\n" for t in truth)
        + "elsewhere,always-a,a\n",
    )
    gold = write(tmp_path, "gold.csv", "task,label\nt0,a\nt1,b\nt3,b\n")
    workers = tmp_path / "workers.csv"
    result = run("aggregate", answers, "--method", "ds", "--gold", gold, "--predictions",
                 predictions, "--workers-out", str(workers))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {r["task"]: r["label"] for r in rows(result.stdout)} == truth
    assert "model 'always-a': estimated accuracy" in result.stderr
    assert "on 20 predictions" in result.stderr  # the task absent from the answers is ignored
    assert {r["worker"] for r in rows(workers.read_text())} == {"w0", "w1"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("task,model,label\nt1,m,fish\n", "p.csv:2: label 'fish' does not occur in"),
        (
            "task,model,label\nt1,m,cat\nt2,m,cat\nt1,m,dog\n",
            "p.csv:4: task 't1' is predicted twice by model 'm'",
        ),
        ("task,label\nt1,cat\n", "p.csv:1: missing column 'model'"),
    ],
)
def test_malformed_predictions(answers: Path, tmp_path: Path, content: str, message: str) -> None:
    predictions = write(tmp_path, "p.csv", content)
    assert_input_error(run("aggregate", str(answers), "--predictions", predictions), message)
