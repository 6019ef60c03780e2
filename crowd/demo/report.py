"""Score a demo's outcome against the truth, and print it as a table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crowd.demo.run import Outcome
from crowd.demo.scenarios import Scenario
from crowd.em import MajorityVote, encode


@dataclass(frozen=True)
class Report:
    """The demo's figures, on the regular (non-gold) tasks with a known truth.

    ``mv_accuracy`` is majority vote over every stored answer, banned workers' included (ties
    to the label listed first); ``ds_accuracy`` is the service's published label (its
    Dawid-Skene results, which leave banned workers out). ``answers_used`` counts answers on
    regular tasks; ``fixed_answers`` is what the scenario's fixed overlap would ask for and
    ``base_answers`` what its base overlap ``base_overlap`` asks for before dynamic overlap
    adds any.
    """

    title: str
    scored: int
    gold_tasks: int
    mv_accuracy: float
    ds_accuracy: float
    answers_used: int
    gold_answers: int
    fixed_answers: int
    fixed_text: str
    base_answers: int
    base_overlap: int
    complete: int
    bad_banned: int
    bad_total: int
    good_banned: int
    good_total: int
    bad_name: str
    good_name: str
    runs: int
    seconds: float
    ended: str
    banned: list[tuple[str, str, str]]  # (worker name, kind, the ban's reason)
    reference: list[tuple[str, str]]  # the scenario's extra rows

    @property
    def answers_saved(self) -> int:
        return self.fixed_answers - self.answers_used


def score(scenario: Scenario, outcome: Outcome) -> Report:
    truth = {t.external_id: t.truth for t in scenario.tasks if not t.gold}
    gold = {t.external_id for t in scenario.tasks if t.gold}
    regular = [a for a in outcome.answers if a["external_id"] in truth]
    scored_ids = sorted(t for t, label in truth.items() if label is not None)
    mv = _majority_vote([a for a in regular if truth[a["external_id"]] is not None], scenario)
    ds = {r["external_id"]: r["label"] for r in outcome.results}
    ds_right = sum(ds.get(t) == truth[t] for t in scored_ids)
    banned = {outcome.workers[w] for w in outcome.banned if w in outcome.workers}
    bad = [w for w in outcome.workers.values() if w.bad]
    good = [w for w in outcome.workers.values() if not w.bad]
    n = max(len(scored_ids), 1)
    return Report(
        title=scenario.title,
        scored=len(scored_ids),
        gold_tasks=len(gold),
        mv_accuracy=sum(mv.get(t) == truth[t] for t in scored_ids) / n,
        ds_accuracy=ds_right / n,
        answers_used=len(regular),
        gold_answers=sum(1 for a in outcome.answers if a["external_id"] in gold),
        fixed_answers=scenario.fixed_answers,
        fixed_text=scenario.fixed_text,
        base_answers=scenario.base_answers,
        base_overlap=int(scenario.settings["overlap"]),
        complete=sum(
            1 for r in outcome.results if r["external_id"] in truth and r["status"] == "complete"
        ),
        bad_banned=sum(1 for w in bad if w in banned),
        bad_total=len(bad),
        good_banned=sum(1 for w in good if w in banned),
        good_total=len(good),
        bad_name=scenario.bad_name,
        good_name=scenario.good_name,
        runs=outcome.runs,
        seconds=outcome.seconds,
        ended=outcome.ended,
        reference=list(scenario.reference),
        banned=[
            (outcome.workers[w].name, outcome.workers[w].kind, reason)
            for w, reason in sorted(outcome.banned.items())
            if w in outcome.workers
        ],
    )


def _majority_vote(answers: list[dict[str, Any]], scenario: Scenario) -> dict[str, str]:
    """The majority vote of ``answers`` (the API's rows) per task external id, ties to the
    label listed first in the scenario."""
    if not answers:
        return {}
    # Labels go in as their place in the scenario's list, so that class order is list order.
    place = {label: i for i, label in enumerate(scenario.labels)}
    enc = encode(
        [a["external_id"] for a in answers],
        [a["worker_id"] for a in answers],
        [place[a["label"]] for a in answers],
    )
    fitted = MajorityVote().fit(
        enc.tasks, enc.workers, enc.labels, n_tasks=enc.n_tasks, n_classes=enc.n_classes
    )
    winners = enc.decode_labels(fitted.labels_).tolist()
    return {
        str(t): scenario.labels[int(c)]
        for t, c in zip(enc.task_index.tolist(), winners, strict=True)
    }


def table(report: Report) -> str:
    """The report as a two-column Markdown table (one figure a row)."""
    saved = report.answers_saved
    share = saved / report.fixed_answers if report.fixed_answers else 0.0
    extra = report.answers_used - report.base_answers
    extra_share = extra / report.base_answers if report.base_answers else 0.0
    base = f"the base overlap {report.base_overlap}"
    rows = [
        ("tasks scored against the truth", f"{report.scored}"),
        ("tasks complete", f"{report.complete}"),
        ("accuracy: majority vote (all answers)", f"{report.mv_accuracy:.4f}"),
        ("accuracy: crowd (Dawid-Skene, bans, dynamic overlap)", f"{report.ds_accuracy:.4f}"),
        *report.reference,
        ("answers used on regular tasks", f"{report.answers_used}"),
        (f"answers {report.fixed_text}", f"{report.fixed_answers}"),
        ("answers saved against that", f"{saved} ({share:.1%})"),
        (f"answers at {base}", f"{report.base_answers}"),
        (f"answers beyond {base} (dynamic overlap)", f"{extra:+d} ({extra_share:+.1%})"),
        (f"{report.bad_name} banned", f"{report.bad_banned} of {report.bad_total}"),
        (f"{report.good_name} banned (wrongly)", f"{report.good_banned} of {report.good_total}"),
        ("gold tasks / answers on them", f"{report.gold_tasks} / {report.gold_answers}"),
        ("aggregation runs", f"{report.runs}"),
        ("seconds", f"{report.seconds:.0f}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'figure':<{width}} | value |", f"|{'-' * (width + 2)}|------:|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)


def bans(report: Report, limit: int = 20) -> str:
    """One line per banned worker: who it really was, and the service's reason."""
    lines = [f"banned: {name}, {kind}: {reason}" for name, kind, reason in report.banned[:limit]]
    if len(report.banned) > limit:
        lines.append(f"... and {len(report.banned) - limit} more")
    return "\n".join(lines)
