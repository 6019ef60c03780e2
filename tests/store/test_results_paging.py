"""A results page costs the same at any cursor depth: the plan reads the page's rows from the
cursor on, through an index, and nothing before it (keyset pagination, no OFFSET)."""

from __future__ import annotations

import json
from typing import Any

import psycopg2.extensions
import pytest

from crowd.store import results
from crowd.store.db import Database

LIMIT = 50


class _Explained(psycopg2.extensions.cursor):
    """A cursor that runs each statement under EXPLAIN ANALYZE and keeps the plans."""

    plans: list[dict[str, Any]]

    def execute(self, query: Any, vars: Any = None) -> None:
        super().execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, vars)
        row = self.fetchone()
        assert row is not None
        plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
        self.plans.append(plan[0]["Plan"])


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


def _rows_touched(node: dict[str, Any]) -> int:
    """Rows a plan node produced or threw away, over all its loops."""
    removed = node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    return int((node["Actual Rows"] + removed) * node["Actual Loops"])


@pytest.fixture()
def two_projects(client, requester, make_project, database: Database) -> tuple[int, list[int]]:
    """A 6,000-task project whose ids interleave with another project's (both built in SQL,
    half of the big one's tasks with a published result), analysed; (id, its task ids)."""
    big = make_project(requester)["id"]
    other = make_project(requester)["id"]
    with database.transaction() as cur:
        cur.execute(
            """
            WITH made AS (
                INSERT INTO tasks (project_id, external_id, data, target)
                SELECT CASE WHEN g %% 3 = 0 THEN %(other)s ELSE %(big)s END, 't' || g, '{}', 3
                FROM generate_series(1, 9000) g
                RETURNING id, project_id
            )
            INSERT INTO task_results
                (task_id, project_id, run_id, label, confidence, answers, posteriors, decision)
            SELECT id, project_id, 1, 0, 0.9, 3, '{0.9,0.05,0.05}', 0.9 FROM made
            WHERE id %% 2 = 0
            """,
            {"big": big, "other": other},
        )
        cur.execute("ANALYZE tasks")
        cur.execute("ANALYZE task_results")
        cur.execute("SELECT id FROM tasks WHERE project_id = %s ORDER BY id", (big,))
        ids = [int(r[0]) for r in cur.fetchall()]
    assert len(ids) == 6000
    return big, ids


@pytest.mark.parametrize("depth", [0.0, 0.5, 0.99])
def test_a_results_page_reads_only_its_own_rows_at_any_depth(
    two_projects: tuple[int, list[int]], database: Database, depth: float
) -> None:
    project_id, ids = two_projects
    at = int(depth * len(ids))
    after = ids[at - 1] if at else 0
    with database.transaction() as cur:
        explained = cur.connection.cursor(cursor_factory=_Explained)
        explained.plans = []
        results.page(explained, project_id, after, LIMIT)
        (plan,) = explained.plans
    touched = {n["Node Type"]: _rows_touched(n) for n in _nodes(plan)}
    # Every node handles at most about a page of rows (and an index lookup per page row),
    # whatever the depth: no OFFSET skipping rows, no scan from the project's first task.
    assert max(touched.values()) <= 2 * LIMIT, touched
    assert not any(n["Node Type"] == "Seq Scan" for n in _nodes(plan))
    scans = [n for n in _nodes(plan) if n.get("Relation Name") == "tasks"]
    assert [n["Index Name"] for n in scans] == ["tasks_project"]


def test_pages_walk_every_task_once_in_order(
    two_projects: tuple[int, list[int]], database: Database
) -> None:
    project_id, ids = two_projects
    seen: list[int] = []
    after = 0
    with database.transaction() as cur:
        while True:
            page = results.page(cur, project_id, after, 1000)
            seen += [int(r[0]) for r in page]
            if len(page) < 1000:
                break
            after = seen[-1]
    assert seen == ids


def _plan_of_page(
    database: Database, project_id: int, **kwargs: Any
) -> tuple[list[int], dict[str, int]]:
    """The page's task ids and, per plan node type, the most rows any such node touched."""
    with database.transaction() as cur:
        ids = [int(r[0]) for r in results.page(cur, project_id, 0, LIMIT, **kwargs)]
        explained = cur.connection.cursor(cursor_factory=_Explained)
        explained.plans = []
        results.page(explained, project_id, 0, LIMIT, **kwargs)
        (plan,) = explained.plans
    touched: dict[str, int] = {}
    for node in _nodes(plan):
        touched[node["Node Type"]] = max(touched.get(node["Node Type"], 0), _rows_touched(node))
    return ids, touched


def test_a_since_run_page_with_few_changes_reads_those_not_the_project(
    two_projects: tuple[int, list[int]], database: Database
) -> None:
    # A requester polling `since_run` on a big project where the last run changed a handful
    # of tasks: the page must not walk the project's tasks to find them (it once took minutes
    # at 200k tasks).
    project_id, ids = two_projects
    changed = [i for i in ids if i % 2 == 0][100:105]
    with database.transaction() as cur:
        cur.execute("UPDATE task_results SET run_id = 2 WHERE task_id = ANY(%s)", (changed,))
        cur.execute("ANALYZE task_results")
    page, touched = _plan_of_page(database, project_id, since_run=1)
    assert page == changed
    assert max(touched.values()) <= 2 * LIMIT, str(touched)


def test_a_since_run_page_with_every_task_changed_reads_about_a_page(
    two_projects: tuple[int, list[int]], database: Database
) -> None:
    project_id, ids = two_projects
    page, touched = _plan_of_page(database, project_id, since_run=0)
    assert page == [i for i in ids if i % 2 == 0][:LIMIT]
    # At most the ids the page spans: here its 50 tasks lie among about 150 ids, since the
    # fixture's other project and the tasks with no result interleave with them.
    assert max(touched.values()) <= 4 * LIMIT, str(touched)
