-- 0013: the review lane (issue 12). A project's `review` setting (null: off), and on each task
-- the lane routing gave it: `proposal`, the label shown to review-lane workers (an index into
-- projects.labels; NULL: the task is labelled blind), and `audit`, set on a task that would
-- have been auto-accepted but was drawn for blind labelling, so its crowd label audits the
-- model. Both are written when a task's newest prediction arrives (or the setting changes),
-- and a fetch reads them off the task row it locks (crowd/store/review.py).
ALTER TABLE projects ADD COLUMN review jsonb;
ALTER TABLE tasks
    ADD COLUMN proposal smallint,
    ADD COLUMN audit boolean NOT NULL DEFAULT false;
-- GET .../review reads the audited tasks without walking the project.
CREATE INDEX tasks_audit ON tasks (project_id, id) WHERE audit;
