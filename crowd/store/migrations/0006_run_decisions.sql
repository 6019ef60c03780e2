-- Columns that were once added to 0002 after it had shipped; migrations are append-only, so
-- they live here. A database migrated by that edited 0002 already has them (IF NOT EXISTS).

-- Answers of the newest cold-started fit behind a run (runs start cold again once the
-- answers have doubled since then).
ALTER TABLE aggregation_runs ADD COLUMN IF NOT EXISTS cold_answers integer;

-- What dynamic overlap decides on: the label's posterior under a smoothed fit (see
-- crowd.em.live.DECISION_SMOOTHING), less overconfident on tasks with few answers. Rows
-- published before it existed decide on their confidence until the next run rewrites them.
ALTER TABLE task_results ADD COLUMN IF NOT EXISTS decision double precision;
UPDATE task_results SET decision = confidence WHERE decision IS NULL;
ALTER TABLE task_results ALTER COLUMN decision SET NOT NULL;
