-- 0007: `GET .../results?since_run=N` returns auto-labelled tasks. An auto label is not written
-- by an aggregation run, so it has no run_id; instead the model stamps the task with the
-- project's last published run as the label is set or changed (crowd.store.models.
-- write_predictions), and since_run=N returns the task when N is at most that stamp.
ALTER TABLE tasks ADD COLUMN auto_after_run bigint;

-- Tasks auto-labelled before this migration: stamped with the current run, so a poller that
-- never saw them gets them on its next pass.
UPDATE tasks t SET auto_after_run = coalesce(p.last_run_id, 0)
FROM projects p
WHERE p.id = t.project_id AND t.auto_labelled;

-- since_run polling reads the stamped tasks through this (only auto-labelled tasks are in it).
CREATE INDEX tasks_auto_after_run ON tasks (project_id, auto_after_run) WHERE auto_labelled;
