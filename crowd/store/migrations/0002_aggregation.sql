-- 0002: live aggregation. Runs, published results and worker estimates, gold control tasks,
-- quality rules (bans) and dynamic overlap.

ALTER TABLE projects
    -- Dynamic overlap: `overlap` is the minimum number of answers; a task below
    -- `confidence_target` after a run gets one more slot, up to `max_overlap`.
    ADD COLUMN max_overlap integer,                    -- NULL: same as overlap
    ADD COLUMN confidence_target double precision,     -- NULL: fixed overlap
    -- Gold (control) tasks are mixed into each worker's stream at this rate.
    ADD COLUMN gold_rate double precision NOT NULL DEFAULT 0.1,
    ADD COLUMN gold_window integer NOT NULL DEFAULT 20,
    -- Quality rules: NULL thresholds are off.
    ADD COLUMN qc_min_answers integer NOT NULL DEFAULT 20,
    ADD COLUMN qc_min_accuracy double precision,
    ADD COLUMN qc_min_gold_accuracy double precision,
    ADD COLUMN qc_min_gold_answers integer NOT NULL DEFAULT 5,
    ADD COLUMN exclude_banned boolean NOT NULL DEFAULT true,
    ADD COLUMN method text NOT NULL DEFAULT 'ds',
    ADD COLUMN last_run_id bigint;

-- A task closed by dynamic overlap (confident enough) gets no more assignments.
ALTER TABLE tasks ADD COLUMN done boolean NOT NULL DEFAULT false;

-- The assignment queue now leaves out gold tasks (served by their own, mixed-in path) and
-- closed ones. Gold tasks take any number of answers: their target is the largest integer.
DROP INDEX tasks_open;
CREATE INDEX tasks_open ON tasks (project_id, answers DESC, id)
    WHERE taken < target AND NOT done AND gold IS NULL;
CREATE INDEX tasks_gold ON tasks (project_id, answers, id) WHERE gold IS NOT NULL;
UPDATE tasks SET target = 2147483647 WHERE gold IS NOT NULL;

CREATE TABLE aggregation_runs (
    id           bigserial PRIMARY KEY,
    project_id   bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    status       text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    trigger      text NOT NULL,          -- 'answers', 'api', 'follow-up', 'retry', 'catch-up'
    method       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    answers      integer,                -- answers the run used
    answers_total integer,               -- answers stored when it read them (banned included)
    tasks        integer,
    workers      integer,
    iterations   integer,
    converged    boolean,
    objective    double precision,
    warm_start   boolean,
    priors       double precision[],
    error        text
);
CREATE INDEX aggregation_runs_project ON aggregation_runs (project_id, id);
CREATE INDEX aggregation_runs_open ON aggregation_runs (status) WHERE status IN ('queued', 'running');

-- The newest published result of each task that has answers. Written only by a run's publish
-- transaction, so a reader sees one run's output or the next one's, never a mix.
CREATE TABLE task_results (
    task_id     bigint PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_id      bigint NOT NULL,          -- the run that last changed this row
    label       smallint NOT NULL,
    confidence  double precision NOT NULL,
    answers     integer NOT NULL,         -- answers the run used
    posteriors  real[] NOT NULL
);
CREATE INDEX task_results_project ON task_results (project_id, task_id);
CREATE INDEX task_results_run ON task_results (project_id, run_id, task_id);

-- Per worker and project: the newest estimates (also the warm start of the next run) and the
-- quality status.
CREATE TABLE project_workers (
    project_id      bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    worker_id       bigint NOT NULL REFERENCES accounts (id),
    run_id          bigint,
    answers         integer NOT NULL DEFAULT 0,
    accuracy        double precision,
    confusion       double precision[],   -- K x K, row = true class
    gold_answers    integer NOT NULL DEFAULT 0,   -- within the last gold_window gold answers
    gold_correct    integer NOT NULL DEFAULT 0,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'banned')),
    reason          text,
    banned_at       timestamptz,
    -- After an unban the rules wait for this many answers before they judge the worker again.
    judge_after     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, worker_id)
);
CREATE INDEX project_workers_banned ON project_workers (project_id, worker_id)
    WHERE status = 'banned';
