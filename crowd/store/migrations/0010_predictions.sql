-- 0010: predictions from any model (issue 12). A requester's own model posts them through
-- POST /projects/{id}/predictions or inline with a task; each built-in model version writes
-- its own as model 'builtin:<version id>'. Results, export and task.completed carry the
-- newest prediction of each task; GET .../corrections lists where people disagreed with it.

CREATE TABLE predictions (
    id            bigserial PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task_id       bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    model         text NOT NULL CHECK (length(model) BETWEEN 1 AND 100),
    label         smallint NOT NULL,          -- index into projects.labels
    confidence    real NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    probabilities real[],                     -- per project label, when the model sent them
    -- The aggregation run that first published a label other than this prediction's while it
    -- was the task's newest: counted once towards review.corrections.
    corrected_run_id bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Idempotent per (task, model): a repeat changes nothing, another label is a 409.
    UNIQUE (task_id, model)
);
-- The task's newest prediction (results, export, task.completed).
CREATE INDEX predictions_newest ON predictions (task_id, id DESC);
-- GET .../corrections?model=NAME pages through one model's predictions by task.
CREATE INDEX predictions_model ON predictions (project_id, model, task_id);
-- review.corrections names the models corrected since the previous event.
CREATE INDEX predictions_corrected ON predictions (project_id, corrected_run_id)
    WHERE corrected_run_id IS NOT NULL;

ALTER TABLE projects
    -- review.corrections fires each time this many new corrections have been counted.
    ADD COLUMN corrections_every integer NOT NULL DEFAULT 100 CHECK (corrections_every >= 1),
    -- Corrections counted so far, and the count and run at the last review.corrections event.
    ADD COLUMN corrections_total integer NOT NULL DEFAULT 0,
    ADD COLUMN corrections_reported integer NOT NULL DEFAULT 0,
    ADD COLUMN corrections_reported_run bigint NOT NULL DEFAULT 0;
