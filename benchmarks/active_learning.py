"""Active learning: does uncertainty ordering buy a model's accuracy with fewer answers?

    .venv/bin/python benchmarks/active_learning.py --data ../shared/datasets/zheng_product

Replays the real crowd's answers of a dataset with item texts (``items.csv``: zheng_product,
snow_rte) through the HTTP API, once per ordering, against the machine's PostgreSQL and Redis
(a throw-away database; Redis db ``--redis``, flushed before and after):

1. ``crowd serve --no-worker`` and one ``crowd worker`` (the aggregation runs and the
   retrains). ``--eval`` tasks (seeded draw) are posted as gold tasks: with ``gold_rate`` 0
   they are never handed out, so they only score each model version (``metrics.gold_accuracy``
   from ``GET /models``). The other tasks are the pool, with ``{"text": <items.csv text>}``.
2. Two projects, identical but for ``order``: ``fifo`` (the peer: the default queue, i.e.
   passive learning) and ``uncertainty`` (lowest model margin first, ``random_share`` 0.1).
   Both have ``overlap`` = the answers each task has in the dataset (3 for zheng_product),
   ``model: {"input": "text", "field": "text"}`` and ``retrain_every`` = ``--step`` tasks.
3. The crowd: one worker account per answer slot. Slot ``k`` answers any task it is handed
   with that task's ``k``-th recorded answer (the real crowd's labels, in the dataset's
   order; the real workers' identities are not kept, so the aggregation sees three
   interchangeable workers). Rounds of ``--step`` tasks: the slots fetch and answer in turn,
   then the benchmark waits until the aggregation run has read every answer and the retrain
   it triggered has finished, and records (answers bought, the newest version's accuracy on
   the held-out gold). It stops after ``--budget`` answers.

Printed: the table of accuracy and log-loss against answers for both orderings, the majority
class's accuracy on the held-out gold (the floor a model must beat), fifo's final accuracy,
the answers uncertainty ordering needed to reach it, and their ratio (the goal: <= 60%); the
same for log-loss. A PNG of the curves goes to ``--png``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import random
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import Api, bench_database, crowd_bin, start_services
from replay import Dataset, load, wait_caught_up

GOAL_SHARE = 0.60  # uncertainty reaches fifo's final accuracy with <= 60% of its answers
TASK_BATCH = 5000


def read_items(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / "items.csv"
    if not path.exists():
        raise SystemExit(f"error: {path} missing; use a dataset with item texts (zheng_product)")
    csv.field_size_limit(1 << 24)
    with path.open(newline="") as handle:
        return {row["task"]: row for row in csv.DictReader(handle)}


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", (text or "").lower()))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def _price(text: str) -> float | None:
    found = re.search(r"\d+(?:\.\d+)?", (text or "").replace(",", ""))
    return float(found.group()) if found else None


def pair_features(item: dict[str, str]) -> list[float]:
    """``--input features``: similarities of a product pair (zheng_product's columns): name
    words, name character trigrams, description words, model-number-like tokens, price."""

    def trigrams(text: str) -> set[str]:
        text = " ".join((text or "").lower().split())
        return {text[i : i + 3] for i in range(len(text) - 2)}

    def codes(side: str) -> set[str]:
        words = _tokens(item[f"{side}_name"] + " " + item[f"{side}_description"])
        return {w for w in words if re.search(r"\d", w) and re.search(r"[a-z]", w)}

    left, right = _price(item["left_price"]), _price(item["right_price"])
    both = bool(left and right)
    return [
        _jaccard(_tokens(item["left_name"]), _tokens(item["right_name"])),
        _jaccard(trigrams(item["left_name"]), trigrams(item["right_name"])),
        _jaccard(_tokens(item["left_description"]), _tokens(item["right_description"])),
        _jaccard(codes("left"), codes("right")),
        abs(math.log(left / right)) if both and left and right else 0.0,
        float(both),
    ]


def task_data(item: dict[str, str] | None, input_kind: str) -> dict[str, Any]:
    if input_kind == "text":
        return {"text": item["text"] if item else ""}
    return {"x": pair_features(item)} if item else {}


def slot_answers(data: Dataset) -> dict[str, list[str]]:
    """Each task's recorded labels in the dataset's order (by worker name, stable)."""
    out: dict[str, list[str]] = {t: [] for t in data.tasks}
    for worker in data.workers:
        for task, label in data.answers[worker].items():
            out[task].append(label)
    return out


def create_project(
    api: Api, data: Dataset, order: str, overlap: int, step: int, pool: list[str],
    evaluation: list[str], items: dict[str, dict[str, str]], input_kind: str,
) -> int:  # fmt: skip
    spec: dict[str, Any] = {
        "name": f"active learning {data.name} {order}",
        "labels": data.labels,
        "overlap": overlap,
        "gold_rate": 0.0,
        "lease_seconds": 600,
        "model": {"input": input_kind, "field": "text" if input_kind == "text" else "x"},
        "retrain_every": step,
        "order": order,
        "random_share": 0.1,
    }
    pid = int(api.call("POST", "/api/v1/projects", spec).json()["id"])
    tasks = [{"external_id": t, "data": task_data(items.get(t), input_kind)} for t in pool]
    tasks += [
        {"external_id": t, "data": task_data(items.get(t), input_kind), "gold": data.gold[t]}
        for t in evaluation
    ]
    for lo in range(0, len(tasks), TASK_BATCH):
        api.call("POST", f"/api/v1/projects/{pid}/tasks", {"tasks": tasks[lo : lo + TASK_BATCH]})
    return pid


def wait_for_model(api: Api, pid: int, timeout: float = 600.0) -> dict[str, Any] | None:
    """Until no version is queued or running, twice a second apart (a run queues its retrain
    just after it is recorded as succeeded); returns the newest succeeded version."""
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    while time.monotonic() < deadline:
        versions = api.call("GET", f"/api/v1/projects/{pid}/models?limit=50").json()["models"]
        if any(v["status"] in ("queued", "running") for v in versions):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= 1.0:
            done = [v for v in versions if v["status"] == "succeeded"]
            return done[0] if done else None
        time.sleep(0.2)
    raise RuntimeError(f"project {pid}: a retrain did not finish within {timeout:.0f} s")


def run_ordering(
    api: Api, base: str, slots: list[str], pid: int, recorded: dict[str, list[str]],
    budget: int, step: int,
) -> list[tuple[int, float, float]]:  # fmt: skip
    """Replay rounds until ``budget`` answers; returns (answers, gold accuracy, gold log-loss)
    of the newest model version after each round."""
    workers = [Api(base, token) for token in slots]
    curve: list[tuple[int, float, float]] = []
    answers = 0
    while answers < budget:
        for _ in range(step):
            for k, worker in enumerate(workers):
                r = worker.call("POST", f"/api/v1/projects/{pid}/assignments", ok=(201, 204))
                if r.status_code == 204:
                    continue
                got = r.json()
                labels = recorded.get(got["task"]["external_id"], [])
                path = f"/api/v1/assignments/{got['assignment_id']}"
                if k < len(labels):
                    worker.call("POST", path + "/answer", {"label": labels[k]})
                    answers += 1
                else:
                    worker.call("POST", path + "/skip")
        wait_caught_up(api, pid, answers)
        version = wait_for_model(api, pid)
        if version is not None and version["metrics"]["gold_accuracy"] is not None:
            metrics = version["metrics"]
            curve.append((answers, metrics["gold_accuracy"], metrics["gold_log_loss"]))
            print(
                f"  {answers:6d} answers: gold accuracy {curve[-1][1]:.4f},"
                f" log-loss {curve[-1][2]:.4f}",
                flush=True,
            )
    return curve


def answers_to_reach(
    curve: list[tuple[int, float, float]], target: float, column: int = 1
) -> int | None:
    """Answers after which the curve first reaches ``target``: accuracy (column 1) at least
    it, or log-loss (column 2) at most it."""
    better = (lambda v: v >= target) if column == 1 else (lambda v: v <= target)
    return next((row[0] for row in curve if better(row[column])), None)


def plot(curves: dict[str, list[tuple[int, float, float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, curve in curves.items():
        for ax, column in zip(axes, (1, 2), strict=True):
            ax.plot([r[0] for r in curve], [r[column] for r in curve], marker="o", ms=3, label=name)
    for ax, what in zip(axes, ("accuracy", "log-loss"), strict=True):
        ax.set_xlabel("human answers bought")
        ax.set_ylabel(f"model {what} on held-out gold")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="a dataset folder with items.csv")
    p.add_argument("--budget", type=int, default=3000, help="answers bought per ordering")
    p.add_argument("--step", type=int, default=100, help="tasks per round (= retrain_every)")
    p.add_argument("--eval", type=int, default=1500, help="held-out gold tasks for scoring")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--input", choices=("text", "features"), default="text",
        help="text: items.csv's text column; features: product-pair similarities computed"
        " from its columns (zheng_product) [default: text]",
    )  # fmt: skip
    p.add_argument(
        "--png", type=Path, default=None,
        help="where the plot goes [default: benchmarks/active_learning_<input>.png]",
    )  # fmt: skip
    p.add_argument("--port", type=int, default=8776)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="flushed before and after")
    p.add_argument("--crowd", default=None, help="the crowd command [default: beside python]")
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args(argv)

    args.png = args.png or Path(f"benchmarks/active_learning_{args.input}.png")
    data = load(args.data)
    items = read_items(args.data)
    recorded = slot_answers(data)
    overlap = data.max_per_task
    rng = random.Random(args.seed)
    shuffled = [t for t in data.tasks if t in data.gold]
    rng.shuffle(shuffled)
    evaluation = sorted(shuffled[: args.eval])
    held = set(evaluation)
    pool = [t for t in data.tasks if t not in held]
    print(
        f"active learning on {data.name}: {len(pool)} pool tasks, {len(evaluation)} held-out"
        f" gold, overlap {overlap}, rounds of {args.step} tasks, budget {args.budget} answers,"
        f" model input {args.input}",
        flush=True,
    )

    crowd_cmd = crowd_bin(args.crowd)
    logs = Path(tempfile.mkdtemp(prefix="crowd_active_"))
    queue = redis.Redis.from_url(args.redis)
    queue.flushdb()
    began = time.monotonic()
    curves: dict[str, list[tuple[int, float, float]]] = {}
    try:
        with (
            bench_database(args.postgres, args.keep_db, "bench_active") as url,
            contextlib.ExitStack() as up,
        ):
            services = start_services(
                crowd_cmd, url, args.redis, args.port, logs, "--workers", "1", name="active"
            )
            up.callback(services.stop)
            base = services.base
            api = Api(base, services.requester)
            for order in ("fifo", "uncertainty"):
                pid = create_project(
                    api, data, order, overlap, args.step, pool, evaluation, items, args.input
                )
                slots = [
                    str(api.call("POST", "/api/v1/workers", {"name": f"{order} slot {k}"})
                        .json()["token"])
                    for k in range(overlap)
                ]  # fmt: skip
                print(f"{order} (project {pid}):", flush=True)
                curves[order] = run_ordering(
                    api, base, slots, pid, recorded, args.budget, args.step
                )
            up.close()
    finally:
        with contextlib.suppress(redis.RedisError):
            queue.flushdb()

    fifo, unc = curves["fifo"], curves["uncertainty"]
    print()
    print(
        "| answers | fifo accuracy | uncertainty accuracy | fifo log-loss | uncertainty log-loss |"
    )
    print("|---:|---:|---:|---:|---:|")
    by_n = {row[0]: row for row in unc}
    for n, acc, loss in fifo:
        other = by_n.get(n)
        theirs = f"{other[1]:.4f} | " if other else " | "
        print(f"| {n} | {acc:.4f} | {theirs}{loss:.4f} | {f'{other[2]:.4f}' if other else ''} |")
    final_n, final_acc, final_loss = fifo[-1]
    majority = max(sum(1 for t in evaluation if data.gold[t] == lab) for lab in data.labels)
    print(f"majority class on the held-out gold: accuracy {majority / len(evaluation):.4f}")
    needed = answers_to_reach(unc, final_acc)
    print()
    print(f"fifo (peer): final accuracy {final_acc:.4f} after {final_n} answers")
    if needed is None:
        print(f"uncertainty: never reached {final_acc:.4f} within {unc[-1][0]} answers"
              f" (final {unc[-1][1]:.4f}); goal NOT met")  # fmt: skip
    else:
        share = needed / final_n
        verdict = "met" if share <= GOAL_SHARE else "NOT met"
        print(
            f"uncertainty: reached it after {needed} answers = {share:.2f} x fifo's answers"
            f" (goal <= {GOAL_SHARE:.2f}: {verdict}); its final accuracy {unc[-1][1]:.4f}"
        )
    if final_acc <= majority / len(evaluation):
        print(
            "CAUTION: fifo's final model does not beat the majority class on the held-out gold,"
            " so the accuracy comparison above measures nothing; compare log-loss"
        )
    needed_loss = answers_to_reach(unc, final_loss, column=2)
    reached = (
        f"reached it after {needed_loss} answers = {needed_loss / final_n:.2f} x fifo's"
        if needed_loss is not None
        else "did not reach it within the budget"
    )
    print(f"log-loss: fifo's final {final_loss:.4f}; uncertainty {reached}")
    plot(curves, args.png, f"{data.name}, {args.input} model: rounds of {args.step} tasks")
    print(f"plot: {args.png}")
    print(f"wall time {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
