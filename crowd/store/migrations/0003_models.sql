-- 0003: models trained on the aggregated labels. Versions with their metrics, predictions on
-- tasks, uncertainty ordering and auto-labelling.

ALTER TABLE projects
    -- What the model reads: {"input": "text" | "features", "field": "<key in task data>"}.
    -- NULL: no model; nothing below runs for the project.
    ADD COLUMN model jsonb,
    -- A retrain is queued once this many more tasks are complete (by the crowd) than when the
    -- newest version was queued.
    ADD COLUMN retrain_every integer NOT NULL DEFAULT 200,
    -- 'fifo' (the default queue) or 'uncertainty' (lowest model margin first).
    ADD COLUMN "order" text NOT NULL DEFAULT 'fifo',
    -- With 'uncertainty', this share of fetches takes a uniformly random open task instead.
    ADD COLUMN random_share double precision NOT NULL DEFAULT 0.1,
    -- Auto-labelling: the accuracy auto-labels must reach on gold. NULL: off.
    ADD COLUMN auto_label_accuracy double precision;

ALTER TABLE tasks
    ADD COLUMN model_id bigint,              -- the version that made the prediction
    ADD COLUMN model_label smallint,         -- index into projects.labels
    ADD COLUMN model_confidence real,        -- the predicted label's probability
    -- Top probability minus the runner-up: low is unsure. NULL (no prediction) sorts first.
    ADD COLUMN model_margin real,
    -- Closed by auto-labelling: the model's label stands in for the crowd's.
    ADD COLUMN auto_labelled boolean NOT NULL DEFAULT false,
    -- A uniform random key, for the random share of uncertainty ordering.
    ADD COLUMN rand double precision NOT NULL DEFAULT random();

-- The uncertainty queue and its random share: same open-task predicate as tasks_open, so a
-- fetch reads the first index entry the worker has not seen, never sorts.
CREATE INDEX tasks_uncertain ON tasks (project_id, model_margin NULLS FIRST, id)
    WHERE taken < target AND NOT done AND gold IS NULL;
CREATE INDEX tasks_random ON tasks (project_id, rand)
    WHERE taken < target AND NOT done AND gold IS NULL;

CREATE TABLE model_versions (
    id              bigserial PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    trigger         text NOT NULL,          -- 'tasks' (retrain_every reached) or 'api'
    run_id          bigint,                 -- the aggregation run whose labels it trains on
    -- Complete crowd-labelled tasks when queued: the next retrain counts from here.
    complete_tasks  integer NOT NULL DEFAULT 0,
    trained_tasks   integer,
    skipped_tasks   integer,                -- tasks without the model's field
    gold_tasks      integer,
    gold_accuracy   double precision,
    gold_log_loss   double precision,
    -- Auto-labelling: the confidence calibrated on gold, NULL when no threshold reaches the
    -- target (or auto-labelling is off); auto_labelled counts the tasks it closed.
    threshold       double precision,
    auto_labelled   integer,
    predicted_tasks integer,
    kind            text,                   -- e.g. 'text:hashing-tfidf+logreg'
    model           bytea,                  -- the fitted scikit-learn pipeline, joblib bytes
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX model_versions_project ON model_versions (project_id, id);
-- At most one version per project is queued or running.
CREATE UNIQUE INDEX model_versions_open ON model_versions (project_id)
    WHERE status IN ('queued', 'running');
