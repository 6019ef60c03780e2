-- 0016: project types (issue 16): multilabel tags, numeric ratings, pairwise preferences.
-- A categorical project (the default) reads and writes exactly the columns it did before.
--
-- How a typed project uses the existing columns, so that the assignment queue, gold mixing,
-- dynamic overlap and since_run polling work unchanged:
--   * projects.labels: multilabel, the label set; pairwise, {left, right} (+ tie when
--     ties are on); numeric, empty.
--   * assignments.label: pairwise, the winner's index in labels; numeric and multilabel 0,
--     the answer itself in assignments.value / assignments.label_set.
--   * tasks.gold marks a gold task as before: pairwise, the winner's index; numeric and
--     multilabel 0, the known answer in tasks.gold_value / tasks.gold_set.
--   * task_results.decision is the confidence dynamic overlap reads (see crowd/em/typed.py).

ALTER TABLE projects
    ADD COLUMN type text NOT NULL DEFAULT 'categorical'
        CHECK (type IN ('categorical', 'multilabel', 'numeric', 'pairwise')),
    ADD COLUMN scale jsonb,                           -- numeric: {"min", "max", "step"}
    ADD COLUMN ties boolean NOT NULL DEFAULT false;   -- pairwise: "tie" is an answer

ALTER TABLE assignments
    ADD COLUMN value double precision,   -- numeric answer
    ADD COLUMN label_set smallint[];     -- multilabel answer: indices into projects.labels

ALTER TABLE tasks
    ADD COLUMN gold_value double precision,
    ADD COLUMN gold_set smallint[];

ALTER TABLE task_results
    ADD COLUMN value double precision,        -- numeric: the estimate
    ADD COLUMN low double precision,          -- numeric: the 90% credible interval
    ADD COLUMN high double precision,
    ADD COLUMN label_set smallint[];          -- multilabel: the chosen labels
    -- multilabel: posteriors holds each label's probability; pairwise: P(left), P(right).

-- Per worker: the typed model's estimates ({"bias", "noise"} numeric, {"sensitivity",
-- "specificity"} multilabel, {"reliability"} pairwise).
ALTER TABLE project_workers ADD COLUMN estimates jsonb;

-- Pairwise: each item's newest score, written by a run's publish transaction.
CREATE TABLE item_results (
    project_id   bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    item         text NOT NULL,            -- the requester's item id
    run_id       bigint NOT NULL,
    score        double precision NOT NULL,
    low          double precision NOT NULL,  -- 90% interval
    high         double precision NOT NULL,
    rank         integer NOT NULL,         -- 1 = best, within its component
    component    integer NOT NULL,         -- 0 = the largest connected component
    comparisons  integer NOT NULL,
    position     integer NOT NULL,         -- 1.. in ranking order (component, then rank)
    PRIMARY KEY (project_id, item)
);
-- The ranking page, read from a cursor on position.
CREATE UNIQUE INDEX item_results_ranking ON item_results (project_id, position);

-- Pairwise: the run's estimate of the left item's advantage (a log-odds).
ALTER TABLE aggregation_runs ADD COLUMN position_bias double precision;
