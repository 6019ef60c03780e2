-- 0019: active pairwise selection (issue 16, docs/TYPES.md): a pairwise project may let the
-- service create its next comparisons, after each run, up to a budget.
--
-- * projects.active: {"budget", "batch"} (crowd.api.schemas.ActiveSettings), or NULL: off.
-- * projects.active_created: comparisons the service has created for the project so far
--   (what the budget is spent on), kept in the transaction that creates them.
-- * tasks.active_run: the run whose selection created the task (NULL: posted by the
--   requester). A run creates its tasks in its own publish transaction, and only when none
--   carries its id yet, so a retried run creates nothing twice.

ALTER TABLE projects
    ADD COLUMN active jsonb,
    ADD COLUMN active_created integer NOT NULL DEFAULT 0;

ALTER TABLE tasks ADD COLUMN active_run bigint;

-- The service's comparisons still waiting for answers (each run tops them up to the batch).
CREATE INDEX tasks_active_open ON tasks (project_id, active_run)
    WHERE active_run IS NOT NULL AND answers < target;
