-- 0020: every per-project table keyed by project_id (issue 14, docs/SCALING.md "Spreading
-- projects over several PostgreSQL nodes"), so a partitioning extension such as Citus can
-- distribute the projects: it distributes a table by one column (here project_id, and
-- projects by its id) and needs that column in every PRIMARY KEY and UNIQUE constraint of the
-- table and on both sides of every foreign key between two distributed tables.
--
-- * Every per-project table already has a NOT NULL project_id (0001-0019 gave each one), so
--   no column is added or backfilled.
-- * project_id is appended to each primary key and unique constraint that lacked it:
--   tasks, assignments, aggregation_runs, model_versions, webhooks, webhook_deliveries,
--   predictions (id, project_id); task_results (task_id, project_id); assignments
--   (task_id, worker_id, project_id); predictions (task_id, model, project_id). Appended, not
--   prepended, so every lookup that used the old key (a task by its id, "has this worker seen
--   this task") still reads the same index by its leading columns. Ids still come from their
--   sequences, so they stay unique across projects: the API keeps naming a task, a run or a
--   webhook by its id alone.
-- * The foreign keys between per-project tables carry project_id: assignments, task_results
--   and predictions reference tasks (project_id, id); webhook_deliveries references webhooks
--   (project_id, id). A row whose project_id differs from its parent's is now refused (none
--   is ever written; a database holding one stops this migration with the row's key).
-- * ON CONFLICT targets name the new unique constraints (crowd/store: assignments, runs,
--   typed, predictions).
-- Not per project, so not keyed by project_id: accounts (a Citus reference table),
-- idempotency_keys (per account: keyed by account_id), schema_migrations.
-- tests/store/test_schema_distribution.py checks all of this on the catalog.
--
-- Cost. The migration is one transaction that locks the eight tables first (in one order,
-- so a running service cannot deadlock with it) and holds them until it commits: fetches,
-- answers and runs wait meanwhile. Its time is building the new unique indexes (one pass
-- over each table and a sort) and checking the new foreign keys (a join of each child table
-- with its parent); assignments is most of both. Measured by benchmarks/migration_0020.py
-- (benchmarks/RESULTS.md) on one project of 10M answers on 2M tasks, on the 2-core machine of
-- docs/SCALING.md shared with other jobs: the tables were locked 38 s. The new keys are 8 bytes
-- a row wider: assignments' two unique indexes went from 214 and 301 MiB to 300 and 387 MiB
-- (+172 MiB at 10M answers; tasks' and task_results' keys +8 bytes a task). To keep the
-- locked time short on such a database, build the unique indexes beforehand, without
-- blocking writes, under the names below (this migration then uses them instead of building
-- its own, and refuses one built on other columns; a CONCURRENTLY build that failed leaves an
-- invalid index: drop it and build it again):
--   CREATE UNIQUE INDEX CONCURRENTLY tasks_pkey_0020 ON tasks (id, project_id);
--   CREATE UNIQUE INDEX CONCURRENTLY assignments_pkey_0020 ON assignments (id, project_id);
--   CREATE UNIQUE INDEX CONCURRENTLY assignments_once_0020
--       ON assignments (task_id, worker_id, project_id);
--   CREATE UNIQUE INDEX CONCURRENTLY task_results_pkey_0020 ON task_results (task_id, project_id);
-- What is left under the lock is then mostly the foreign key checks: 19 s instead of 38 s on
-- the database above (the four builds took 43 s, while writes could go on).

LOCK TABLE tasks, assignments, task_results, predictions, aggregation_runs, model_versions,
    webhooks, webhook_deliveries IN ACCESS EXCLUSIVE MODE;

-- The foreign keys that reference the old single-column keys go first.
ALTER TABLE assignments DROP CONSTRAINT assignments_task_id_fkey;
ALTER TABLE task_results DROP CONSTRAINT task_results_task_id_fkey;
ALTER TABLE predictions DROP CONSTRAINT predictions_task_id_fkey;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_webhook_id_fkey;

-- Unique indexes built here unless built beforehand (see above). ADD ... USING INDEX renames
-- each to its constraint's name.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_pkey_0020 ON tasks (id, project_id);
CREATE UNIQUE INDEX IF NOT EXISTS assignments_pkey_0020 ON assignments (id, project_id);
CREATE UNIQUE INDEX IF NOT EXISTS assignments_once_0020
    ON assignments (task_id, worker_id, project_id);
CREATE UNIQUE INDEX IF NOT EXISTS task_results_pkey_0020 ON task_results (task_id, project_id);
CREATE UNIQUE INDEX IF NOT EXISTS predictions_pkey_0020 ON predictions (id, project_id);
CREATE UNIQUE INDEX IF NOT EXISTS predictions_once_0020
    ON predictions (task_id, model, project_id);

ALTER TABLE tasks
    DROP CONSTRAINT tasks_pkey,
    ADD CONSTRAINT tasks_pkey PRIMARY KEY USING INDEX tasks_pkey_0020;
-- A worker sees a task at most once: what makes "never answers twice" hold.
ALTER TABLE assignments
    DROP CONSTRAINT assignments_pkey,
    DROP CONSTRAINT assignments_task_id_worker_id_key,
    ADD CONSTRAINT assignments_pkey PRIMARY KEY USING INDEX assignments_pkey_0020,
    ADD CONSTRAINT assignments_task_id_worker_id_project_id_key
        UNIQUE USING INDEX assignments_once_0020;
ALTER TABLE task_results
    DROP CONSTRAINT task_results_pkey,
    ADD CONSTRAINT task_results_pkey PRIMARY KEY USING INDEX task_results_pkey_0020;
-- Idempotent per (task, model): a repeat changes nothing, another label is a 409.
ALTER TABLE predictions
    DROP CONSTRAINT predictions_pkey,
    DROP CONSTRAINT predictions_task_id_model_key,
    ADD CONSTRAINT predictions_pkey PRIMARY KEY USING INDEX predictions_pkey_0020,
    ADD CONSTRAINT predictions_task_id_model_project_id_key
        UNIQUE USING INDEX predictions_once_0020;
-- An index built beforehand on other columns than the ones above would have become a key as
-- it is: refuse it, naming it.
DO $$
DECLARE
    wrong text;
BEGIN
    SELECT string_agg(format('%s is %s, not %s', c.conname, pg_get_constraintdef(c.oid), w.def),
                      '; ')
    INTO wrong
    FROM (VALUES ('tasks', 'tasks_pkey', 'PRIMARY KEY (id, project_id)'),
                 ('assignments', 'assignments_pkey', 'PRIMARY KEY (id, project_id)'),
                 ('assignments', 'assignments_task_id_worker_id_project_id_key',
                  'UNIQUE (task_id, worker_id, project_id)'),
                 ('task_results', 'task_results_pkey', 'PRIMARY KEY (task_id, project_id)'),
                 ('predictions', 'predictions_pkey', 'PRIMARY KEY (id, project_id)'),
                 ('predictions', 'predictions_task_id_model_project_id_key',
                  'UNIQUE (task_id, model, project_id)')) AS w (tab, name, def)
    JOIN pg_constraint c ON c.conrelid = w.tab::regclass AND c.conname = w.name
    WHERE pg_get_constraintdef(c.oid) <> w.def;
    IF wrong IS NOT NULL THEN
        RAISE EXCEPTION 'an index built beforehand for migration 0020 has other columns: %', wrong
            USING HINT = 'Drop it and build it as the comment of 0020_keys_by_project.sql says.';
    END IF;
END
$$;

-- Tables of a row or a few per event: built here.
ALTER TABLE aggregation_runs
    DROP CONSTRAINT aggregation_runs_pkey, ADD PRIMARY KEY (id, project_id);
ALTER TABLE model_versions
    DROP CONSTRAINT model_versions_pkey, ADD PRIMARY KEY (id, project_id);
ALTER TABLE webhooks
    DROP CONSTRAINT webhooks_pkey, ADD PRIMARY KEY (id, project_id);
ALTER TABLE webhook_deliveries
    DROP CONSTRAINT webhook_deliveries_pkey, ADD PRIMARY KEY (id, project_id);

-- The foreign keys again, through project_id.
ALTER TABLE assignments ADD CONSTRAINT assignments_project_id_task_id_fkey
    FOREIGN KEY (project_id, task_id) REFERENCES tasks (project_id, id) ON DELETE CASCADE;
ALTER TABLE task_results ADD CONSTRAINT task_results_project_id_task_id_fkey
    FOREIGN KEY (project_id, task_id) REFERENCES tasks (project_id, id) ON DELETE CASCADE;
ALTER TABLE predictions ADD CONSTRAINT predictions_project_id_task_id_fkey
    FOREIGN KEY (project_id, task_id) REFERENCES tasks (project_id, id) ON DELETE CASCADE;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_project_id_webhook_id_fkey
    FOREIGN KEY (project_id, webhook_id) REFERENCES webhooks (project_id, id)
    ON DELETE CASCADE;
