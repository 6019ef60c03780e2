"""Workers within a project: estimates, gold accuracy and bans.

Rows of ``project_workers`` are written by aggregation runs (estimates; automatic bans, see
:func:`crowd.store.runs.apply_bans`) and by requesters (manual ban and unban).
"""

from __future__ import annotations

from typing import Any

from crowd.store.assignments import release_held_by
from crowd.store.db import Cursor


def ban_reason(cur: Cursor, project_id: int, worker_id: int) -> str | None:
    """Why the worker is banned from the project, or None if it is not."""
    cur.execute(
        "SELECT reason FROM project_workers"
        " WHERE project_id = %s AND worker_id = %s AND status = 'banned'",
        (project_id, worker_id),
    )
    row = cur.fetchone()
    return (row[0] or "banned by the requester") if row else None


def ban(cur: Cursor, project_id: int, worker_id: int, reason: str) -> None:
    """Ban by hand; the worker's live reservations in the project are released."""
    cur.execute(
        """
        INSERT INTO project_workers (project_id, worker_id, status, reason, banned_at)
        VALUES (%s, %s, 'banned', %s, now())
        ON CONFLICT (project_id, worker_id) DO UPDATE
            SET status = 'banned', reason = excluded.reason, banned_at = now(),
                ban_rule = NULL, evidence_reversed = false
        """,
        (project_id, worker_id, reason),
    )
    release_held_by(cur, project_id, [worker_id])


def unban(cur: Cursor, project_id: int, worker_id: int) -> bool:
    """Lift a ban. The rules judge the worker again only after ``qc_min_answers`` more
    answers. False if the worker was not banned."""
    cur.execute(
        "UPDATE project_workers SET status = 'active', reason = NULL, banned_at = NULL,"
        " ban_rule = NULL, evidence_reversed = false,"
        " judge_after = answers WHERE project_id = %s AND worker_id = %s AND status = 'banned'",
        (project_id, worker_id),
    )
    return cur.rowcount == 1


#: SQL for a project's traps answered, by worker: gold tasks served with a wrong proposal
#: (read through ``assignments_reviewed``); ``caught``: the answer corrected the proposal.
_TRAPS = """
    SELECT a.worker_id, count(*) AS answers, count(*) FILTER (WHERE a.label <> a.proposal) AS caught
    FROM assignments a JOIN tasks t ON t.id = a.task_id AND t.project_id = a.project_id
    WHERE a.project_id = %(project)s AND a.proposal IS NOT NULL AND a.status = 'answered'
      AND t.gold IS NOT NULL AND a.proposal <> t.gold
    GROUP BY a.worker_id"""


def trap_counts(cur: Cursor, project_id: int) -> dict[int, tuple[int, int]]:
    """``worker id -> (trap answers, traps caught)`` in the project (workers with any)."""
    cur.execute(_TRAPS, {"project": project_id})
    return {int(w): (int(n), int(k)) for w, n, k in cur.fetchall()}


def page(
    cur: Cursor, project_id: int, after_id: int, limit: int, status: str | None
) -> list[dict[str, Any]]:
    """Workers who answered in the project or were banned from it, by id.

    ``answers`` is the stored count (live), the estimates are the last run's. ``rules``: per
    quality rule the project turns on, the last run's evidence (see
    :func:`crowd.em.quality.describe`), or None before a run judged the worker.
    ``ban_rule``: the rule that banned the worker (None if banned by hand);
    ``evidence_reversed``: that rule's evidence now says the worker is more likely above the
    threshold than below (the ban stays until the requester lifts it). ``trap_answers`` and
    ``trap_catch_rate``: traps answered, and the share caught (see :func:`trap_counts`).
    ``stamp_rate``: the last run's estimate of how often the worker accepts whatever proposal
    is shown (None without review answers; docs/REVIEW.md).
    """
    cur.execute(
        f"""
        SELECT w.id, w.name, coalesce(n.answers, 0), pw.accuracy, pw.confusion,
               coalesce(pw.gold_answers, 0), coalesce(pw.gold_correct, 0),
               coalesce(pw.status, 'active'), pw.reason, pw.banned_at, pw.run_id,
               pw.evidence, pw.ban_rule, coalesce(pw.evidence_reversed, false), pw.stamp_rate,
               coalesce(tr.answers, 0), tr.caught
        FROM (
            -- one pass over the project's answers gives both who answered and how often
            SELECT worker_id, count(*) AS answers FROM assignments
            WHERE project_id = %(project)s AND worker_id > %(after)s AND status = 'answered'
            GROUP BY worker_id
        ) n
        FULL JOIN (
            SELECT * FROM project_workers
            WHERE project_id = %(project)s AND worker_id > %(after)s
        ) pw ON pw.worker_id = n.worker_id
        JOIN accounts w ON w.id = coalesce(n.worker_id, pw.worker_id)
        LEFT JOIN ({_TRAPS}) tr ON tr.worker_id = w.id
        WHERE (%(status)s::text IS NULL OR coalesce(pw.status, 'active') = %(status)s)
        ORDER BY w.id LIMIT %(limit)s
        """,
        {"project": project_id, "after": after_id, "limit": limit, "status": status},
    )
    out = []
    for (wid, name, answers, accuracy, confusion, gold_n, gold_ok, status_, reason, banned_at,
         run_id, evidence, ban_rule, reversed_, stamp_rate, trap_n, trap_ok) in cur.fetchall():  # fmt: skip
        out.append(
            {
                "id": wid,
                "name": name,
                "answers": answers,
                "accuracy": accuracy,
                "confusion": confusion,
                "gold_answers": gold_n,
                "gold_accuracy": round(gold_ok / gold_n, 6) if gold_n else None,
                "status": status_,
                "reason": reason,
                "banned_at": banned_at.isoformat() if banned_at else None,
                "run_id": run_id,
                "rules": evidence,
                "ban_rule": ban_rule,
                "evidence_reversed": reversed_,
                "stamp_rate": None if stamp_rate is None else round(stamp_rate, 6),
                # Traps (docs/REVIEW.md): gold tasks shown with a wrong proposal.
                "trap_answers": trap_n,
                "trap_catch_rate": round(trap_ok / trap_n, 6) if trap_n else None,
            }
        )
    return out


def bans_of(cur: Cursor, worker_id: int, project_ids: list[int]) -> dict[int, str]:
    """Among ``project_ids``, the projects the worker is banned from, with the reason."""
    cur.execute(
        "SELECT project_id, reason FROM project_workers"
        " WHERE worker_id = %s AND project_id = ANY(%s) AND status = 'banned'",
        (worker_id, project_ids),
    )
    return {pid: reason or "banned by the requester" for pid, reason in cur.fetchall()}
