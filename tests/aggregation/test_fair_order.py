"""The fair queue order's policy alone (workers/fair.py), without Redis or RQ: priority to the
first queues, and a bounded wait for the others."""

from __future__ import annotations

import itertools
import random

import pytest

from crowd.config import Settings
from workers.fair import FairOrder

SMALL, LARGE, MODELS, HOOKS = "crowd", "crowd-large", "crowd-models", "crowd-webhooks"
NAMES = (SMALL, LARGE, MODELS, HOOKS)


def simulate(order: FairOrder, backlog: dict[str, int], turns: int) -> list[str]:
    """A worker taking ``turns`` jobs: each turn it takes the first job of the first queue (in
    ``order.order()``) that has one, as RQ's dequeue does. ``backlog[name] < 0`` is a queue
    that never runs dry (a steady stream of jobs). Returns the queues served, in turn."""
    served = []
    for _ in range(turns):
        name = next((n for n in order.order() if backlog[n] != 0), None)
        if name is None:
            break
        if backlog[name] > 0:
            backlog[name] -= 1
        order.served(name, {n for n, left in backlog.items() if left != 0})
        served.append(name)
    return served


def test_with_nothing_waiting_elsewhere_the_order_is_the_priority_order() -> None:
    order = FairOrder(NAMES, max_skips=3)
    assert order.order() == list(NAMES)
    # one queue alone has jobs: nothing is skipped, the order never changes (RQ's default)
    for name in NAMES:
        for _ in range(10):
            order.served(name, {name})
            assert order.order() == list(NAMES)


def test_a_waiting_queue_is_served_after_exactly_max_skips_turns_under_a_steady_stream() -> None:
    for max_skips in (1, 2, 4, 7):
        order = FairOrder(NAMES, max_skips)
        served = simulate(order, {SMALL: -1, LARGE: 2, MODELS: 0, HOOKS: 0}, 3 * (max_skips + 1))
        one_round = [SMALL] * max_skips + [LARGE]
        assert served == one_round * 2 + [SMALL] * (max_skips + 1)


def test_priority_holds_until_the_bound_small_runs_keep_going_while_a_large_one_waits() -> None:
    order = FairOrder(NAMES, max_skips=4)
    served = simulate(order, {SMALL: 3, LARGE: 1, MODELS: 0, HOOKS: 0}, 10)
    # fewer small jobs than the bound: every one of them goes first, as with RQ's order
    assert served == [SMALL, SMALL, SMALL, LARGE]


def test_no_queue_starves_the_bound_is_max_skips_plus_one_per_other_queue() -> None:
    """Four queues that never run dry: each waits at most max_skips + 3 turns in a row."""
    for max_skips in (1, 2, 3, 5):
        order = FairOrder(NAMES, max_skips)
        served = simulate(order, {SMALL: -1, LARGE: -1, MODELS: -1, HOOKS: -1}, 200)
        for name in NAMES:
            runs = itertools.groupby(served, key=lambda n, name=name: n == name)
            gaps = [len(list(g)) for is_name, g in runs if not is_name]
            assert max(gaps) <= max_skips + len(NAMES) - 1, (max_skips, name, max(gaps))
        # and the first queue still gets the most turns
        counts = {n: served.count(n) for n in NAMES}
        assert counts[SMALL] == max(counts.values())


def test_the_bound_holds_for_random_arrivals() -> None:
    rng = random.Random(14)
    order = FairOrder(NAMES, max_skips=3)
    backlog = dict.fromkeys(NAMES, 0)
    waited = dict.fromkeys(NAMES, 0)  # turns each queue has had a job waiting, unserved
    for _ in range(5_000):
        for name in NAMES:
            backlog[name] += rng.random() < (0.9, 0.3, 0.1, 0.2)[NAMES.index(name)]
        name = next((n for n in order.order() if backlog[n]), None)
        if name is None:
            continue
        backlog[name] -= 1
        waiting = {n for n in NAMES if backlog[n]}
        order.served(name, waiting)
        for other in NAMES:
            waited[other] = waited[other] + 1 if other != name and other in waiting else 0
            assert waited[other] <= 3 + len(NAMES) - 1


def test_a_queue_found_empty_starts_its_count_again() -> None:
    """A due queue that another worker emptied does not jump ahead of the first queue when its
    next job comes: its wait starts from 0 again."""
    order = FairOrder(NAMES, max_skips=2)
    order.served(SMALL, {SMALL, LARGE})
    order.served(SMALL, {SMALL, LARGE})
    assert order.order()[0] == LARGE
    order.served(SMALL, {SMALL})  # the large job went to another worker
    assert order.order() == list(NAMES)


def test_zero_skips_is_rqs_fixed_order() -> None:
    order = FairOrder(NAMES, max_skips=0)
    assert simulate(order, {SMALL: -1, LARGE: -1, MODELS: 0, HOOKS: 0}, 20) == [SMALL] * 20


def test_bad_arguments_say_what_to_pass() -> None:
    with pytest.raises(ValueError, match="0 \\(off\\) or more"):
        FairOrder(NAMES, max_skips=-1)
    with pytest.raises(ValueError, match="distinct"):
        FairOrder([SMALL, SMALL], max_skips=1)
    with pytest.raises(ValueError, match="unknown queue 'elsewhere'"):
        FairOrder(NAMES, max_skips=1).served("elsewhere", set())


def test_crowd_fair_skips_sets_the_bound_and_refuses_a_negative_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CROWD_FAIR_SKIPS", raising=False)
    assert Settings.from_env().fair_skips == 4
    monkeypatch.setenv("CROWD_FAIR_SKIPS", "0")
    assert Settings.from_env().fair_skips == 0
    monkeypatch.setenv("CROWD_FAIR_SKIPS", "-2")
    with pytest.raises(SystemExit, match=r"CROWD_FAIR_SKIPS must be 0 .* or more, got -2"):
        Settings.from_env()
