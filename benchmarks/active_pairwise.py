"""Active pairwise selection against random pairs (issue 16's goal: on a simulated crowd with a
known true ranking of 500 items, active selection reaches the Spearman that random pairs reach
at 20,000 comparisons with at most 40% of them, through the API).

    .venv/bin/python benchmarks/active_pairwise.py [--items 500 --random 20000 --spread 1.5
        --reliability 0.7 1.0 --workers 20 --batch 100 --seeds 0 1 2] [--no-api]
        [--postgres postgresql://... --redis redis://127.0.0.1:6379/13 --port 8791]

The crowd: ``--items`` items with true scores ~ N(0, spread^2) (log-odds); ``--workers``
workers with reliability ~ U(--reliability); a worker shown ``(left, right)`` reports the
outcome of a Bradley-Terry contest, ``P(left wins) = sigmoid(s_left - s_right)``, flipped
with probability ``1 - reliability`` (Crowd-BT's model, no position bias).

1. **Target**: per seed (a crowd of its own), the Spearman between the true scores and
   ``CrowdBradleyTerry`` (the service's pairwise fit, defaults) on ``--random`` uniformly
   random pairs answered by that crowd.
2. **Offline active** (per seed; pure numerics, the service's loop without HTTP): a random
   chain over the items (``items - 1`` comparisons, so every item is known and connected),
   then rounds of ``--batch`` pairs from :class:`crowd.em.active_pairs.ActivePairSelector`
   (seeded per round, the crowd's fitted reliability) on a fresh fit, until the Spearman
   reaches that seed's target or ``--random`` comparisons are used.
3. **Through the API** (first seed, unless ``--no-api``): ``crowd serve`` and one ``crowd
   worker`` on a throw-away database; a pairwise project (overlap 1, no gold) with
   ``"active": {"budget": --random - chain, "batch": --batch}``; the chain posted as tasks;
   then the simulated crowd (each fetch by a random one of its workers) fetches and answers
   while there is something open; runs follow the answers as they come, each topping the
   open comparisons up to the batch. When nothing is open, and every ``--every`` answers,
   it waits for the run covering every answer so far, reads the ranking (``GET
   .../ranking``) and scores it, until the target or the budget.

Printed: the target, each curve (comparisons, Spearman), the comparisons each needed to reach
the target and their share of ``--random``, and the information bound (below).

The bound. In the large-sample regime ``1 - Spearman`` is about proportional to
``sum_i f(s_i)^2 var_i`` (``f`` the density of scores: how fast a rank moves with a score),
and ``var_i = 1 / J_i`` with ``J_i`` the Fisher information of item ``i``'s comparisons. A
random comparison carries the information ``I(s_i - s_j)`` of a random partner; no comparison
carries more than ``I(0)`` (two equal items), and the best allocation of a total
``2 m I(0)`` is ``J_i ~ f(s_i)``. So active needs at least ``(sum f)^2 / I(0)`` over ``n sum
f^2 / E[I(s_i - s)]`` of random's comparisons, whatever it picks: printed as "bound". It
depends on the spread (how lopsided a random pair is) and on the crowd's noise.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis
from scipy.special import expit
from scipy.stats import norm, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _service import Api, add_server_args, bench_database, crowd_bin, start_services

from crowd.client import WorkerClient
from crowd.em.active_pairs import ActivePairSelector
from crowd.em.pairwise import CrowdBradleyTerry

Pairs = tuple[np.ndarray, np.ndarray]


class Crowd:
    """The simulated crowd: true scores, worker reliabilities, answers."""

    def __init__(self, items: int, spread: float, workers: int, low: float, high: float,
                 seed: int) -> None:  # fmt: skip
        rng = np.random.default_rng(seed)
        self.truth = rng.normal(0.0, spread, items)
        self.reliability = rng.uniform(low, high, workers)
        self.rng = np.random.default_rng([seed, 1])

    @property
    def items(self) -> int:
        return int(self.truth.size)

    def answer(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(workers, outcomes)``: 1 when the left item was reported the winner."""
        workers = self.rng.integers(0, self.reliability.size, left.size)
        won = self.rng.random(left.size) < expit(self.truth[left] - self.truth[right])
        faithful = self.rng.random(left.size) < self.reliability[workers]
        return workers, (won == faithful).astype(np.float64)

    def random_pairs(self, k: int) -> Pairs:
        left = self.rng.integers(0, self.items, k)
        right = self.rng.integers(0, self.items - 1, k)
        return left, right + (right >= left)

    def chain(self) -> Pairs:
        order = self.rng.permutation(self.items)
        return order[:-1], order[1:]

    def spearman(self, scores: np.ndarray) -> float:
        return float(spearmanr(scores, self.truth)[0])


def fit(crowd: Crowd, left: np.ndarray, right: np.ndarray, workers: np.ndarray,
        outcomes: np.ndarray) -> CrowdBradleyTerry:  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CrowdBradleyTerry().fit(
            left, right, workers, outcomes, n_items=crowd.items,
            n_workers=crowd.reliability.size,
        )  # fmt: skip


def crowd_reliability(model: CrowdBradleyTerry, workers: np.ndarray) -> float:
    """As crowd.store.active does: the fitted reliabilities weighted by answers."""
    answers = np.bincount(workers, minlength=model.reliability_.size)
    return min(max(float(np.average(model.reliability_, weights=answers)), 0.55), 1.0)


def random_target(args: argparse.Namespace) -> tuple[float, list[float]]:
    got = []
    for seed in args.seeds:
        crowd = make_crowd(args, seed)
        left, right = crowd.random_pairs(args.random)
        workers, outcomes = crowd.answer(left, right)
        got.append(crowd.spearman(fit(crowd, left, right, workers, outcomes).scores_))
    return float(np.mean(got)), got


def make_crowd(args: argparse.Namespace, seed: int) -> Crowd:
    return Crowd(args.items, args.spread, args.workers, *args.reliability, seed)


def offline_active(args: argparse.Namespace, seed: int, target: float) -> list[tuple[int, float]]:
    crowd = make_crowd(args, seed)
    left, right = crowd.chain()
    workers, outcomes = crowd.answer(left, right)
    cols = [[left], [right], [workers], [outcomes]]
    curve: list[tuple[int, float]] = []
    step = 0
    while True:
        arrays = [np.concatenate(c) for c in cols]
        model = fit(crowd, *arrays)
        curve.append((arrays[0].size, crowd.spearman(model.scores_)))
        if curve[-1][1] >= target or arrays[0].size >= args.random:
            return curve
        selector = ActivePairSelector(reliability=crowd_reliability(model, arrays[2]), seed=step)
        step += 1
        want = min(args.batch, args.random - arrays[0].size)
        new_left, new_right = selector.select(model.scores_, model.score_std_, want)
        new_workers, new_outcomes = crowd.answer(new_left, new_right)
        for c, x in zip(cols, (new_left, new_right, new_workers, new_outcomes), strict=True):
            c.append(x)


def _wait_for_run(api: Api, pid: int, answered: int, timeout: float = 600.0) -> None:
    """Until the project's newest run has read every answer so far (asking for one if none
    is coming)."""
    deadline = time.monotonic() + timeout
    asked = False
    while time.monotonic() < deadline:
        newest = next(iter(api.runs(pid, page_size=1)), None)
        if newest is not None and newest["status"] in ("succeeded", "failed"):
            if (newest["answers"] or 0) >= answered:
                if newest["status"] == "failed":
                    raise SystemExit(f"run {newest['id']} failed: {newest.get('error')}")
                return
            if not asked:
                api.request_run(pid)
                asked = True
        time.sleep(0.1)
    raise SystemExit(f"no run covered {answered} answers within {timeout:.0f} s")


def api_active(args: argparse.Namespace, seed: int, target: float,
               log: Callable[[str], None]) -> list[tuple[int, float, float]]:  # fmt: skip
    """The active loop through the service; returns (comparisons, Spearman, seconds)."""
    crowd = make_crowd(args, seed)
    left, right = crowd.chain()
    names = [f"i{k:04d}" for k in range(crowd.items)]
    index = {name: k for k, name in enumerate(names)}
    logs = Path(tempfile.mkdtemp(prefix="crowd_active_pairwise_"))
    redis.Redis.from_url(args.redis).flushdb()
    curve: list[tuple[int, float, float]] = []
    with (
        bench_database(args.postgres, args.keep_db, "bench_active_pairwise") as url,
        contextlib.ExitStack() as up,
    ):
        services = start_services(
            crowd_bin(args.crowd), url, args.redis, args.port, logs, "--workers", "1",
            name="active-pairwise",
        )  # fmt: skip
        up.callback(services.stop)
        api = Api(services.base, services.requester)
        budget = args.random - int(left.size)
        pid = api.create_project(
            "active pairwise", type="pairwise", overlap=1, gold_rate=0,
            active={"budget": budget, "batch": args.batch},
        )["id"]  # fmt: skip
        api.post_tasks(
            pid,
            [
                {"external_id": f"chain{k}", "left": {"id": names[a], "data": {"n": names[a]}},
                 "right": {"id": names[b], "data": {"n": names[b]}}}
                for k, (a, b) in enumerate(zip(left.tolist(), right.tolist(), strict=True))
            ],
        )  # fmt: skip
        tokens = [
            str(api.call("POST", "/api/v1/workers", {"name": f"w{w}"}).json()["token"])
            for w in range(crowd.reliability.size)
        ]
        clients = [WorkerClient(services.base, t) for t in tokens]
        answered = 0
        began = time.monotonic()
        while True:
            pick = int(crowd.rng.integers(0, len(clients)))
            got = clients[pick].fetch(pid)
            if got is not None:
                data = got.data
                a, b = index[data["left"]["id"]], index[data["right"]["id"]]
                won = crowd.rng.random() < expit(crowd.truth[a] - crowd.truth[b])
                faithful = crowd.rng.random() < crowd.reliability[pick]
                clients[pick].answer(got.id, winner="left" if won == faithful
                                     else "right")  # fmt: skip
                answered += 1
                if answered % args.every:
                    continue
            _wait_for_run(api, pid, answered)
            scores = np.zeros(crowd.items)
            for item in api.ranking(pid):
                scores[index[item["item"]]] = item["score"]
            curve.append((answered, crowd.spearman(scores), time.monotonic() - began))
            if len(curve) % 10 == 1 or curve[-1][1] >= target:
                log(f"  api: {answered} comparisons, Spearman {curve[-1][1]:.4f},"
                    f" {curve[-1][2]:.0f} s")  # fmt: skip
            if curve[-1][1] >= target or answered >= args.random:
                return curve
            counts = api.project(pid)["counts"]
            if counts["answers"] >= counts["tasks"]:
                return curve  # the run after the last answers created nothing: budget spent
    return curve


def information_bound(args: argparse.Namespace) -> float:
    """See the module docstring."""
    etas = np.linspace(args.reliability[0], args.reliability[1], 31)

    def info(d: np.ndarray) -> np.ndarray:
        p = expit(d)[..., None]
        q = etas * p + (1 - etas) * (1 - p)
        return np.asarray(((2 * etas - 1) ** 2 * (p * (1 - p)) ** 2 / (q * (1 - q))).mean(-1))

    s = norm.ppf((np.arange(args.items) + 0.5) / args.items) * args.spread
    f = norm.pdf(s, 0.0, args.spread)
    partners = np.random.default_rng(0).normal(0.0, args.spread, 4000)
    random_info = np.array([info(x - partners).mean() for x in s])
    best = float(info(np.zeros(1))[0])
    return float((f.sum() ** 2 / best) / (args.items * (f**2 / random_info).sum()))


def reached(curve: list[tuple[Any, ...]], target: float) -> int | None:
    return next((int(c[0]) for c in curve if c[1] >= target), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--random", type=int, default=20_000, help="random pairs' comparisons")
    parser.add_argument("--spread", type=float, default=1.5, help="sd of the true scores")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--reliability", type=float, nargs=2, default=(0.7, 1.0))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--every",
        type=int,
        default=1000,
        help="through the API, also score the ranking every this many answers",
    )
    parser.add_argument("--no-api", action="store_true", help="offline curves only")
    parser.add_argument("--port", type=int, default=8791)
    add_server_args(parser, redis_db=13)
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    log(f"{args.items} items, true scores sd {args.spread}, {args.workers} workers of"
        f" reliability U({args.reliability[0]}, {args.reliability[1]}), batch {args.batch},"
        f" seeds {args.seeds}")  # fmt: skip
    target, per_seed = random_target(args)
    log(f"target: random pairs at {args.random} comparisons reach Spearman {target:.4f}"
        f" (per seed {', '.join(f'{x:.4f}' for x in per_seed)})")  # fmt: skip
    bound = information_bound(args)
    log(
        f"bound: active needs at least {bound:.2f} of random's comparisons at this spread and"
        " noise (see the docstring)"
    )
    needed = []
    for seed, own in zip(args.seeds, per_seed, strict=True):
        started = time.monotonic()
        curve = offline_active(args, seed, own)
        hit = reached(curve, own)
        needed.append(hit)
        marks = [c for c in curve if c[0] % 2000 < args.batch or c is curve[-1]]
        log(f"offline active, seed {seed} ({time.monotonic() - started:.0f} s): "
            + ", ".join(f"{n}: {r:.4f}" for n, r in marks))  # fmt: skip
        log(f"  reaches its crowd's random figure {own:.4f} at "
            + (f"{hit} comparisons = {hit / args.random:.2f} of random's" if hit
               else f"no point up to {args.random}"))  # fmt: skip
    found = [n for n in needed if n is not None]
    if found:
        log(f"offline active: mean {np.mean(found):.0f} comparisons ="
            f" {np.mean(found) / args.random:.2f} of random's ({len(found)}/{len(needed)} seeds"
            " reached the target)")  # fmt: skip
    if not args.no_api:
        seed = args.seeds[0]
        target_api = per_seed[0]
        log(f"through the API, seed {seed}: target {target_api:.4f} (random at"
            f" {args.random} on this seed's crowd)")  # fmt: skip
        curve = api_active(args, seed, target_api, log)
        hit = reached(curve, target_api)
        log(f"api active: reaches {target_api:.4f} at "
            + (f"{hit} comparisons = {hit / args.random:.2f} of random's" if hit
               else f"no point up to {curve[-1][0]} (Spearman {curve[-1][1]:.4f})")
            + f"; {len(curve)} rounds, {curve[-1][2]:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
