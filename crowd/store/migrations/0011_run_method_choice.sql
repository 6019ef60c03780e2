-- 0011: a run records the method it fitted and why (issue 15). With `method: auto` the run
-- chooses between the label-free methods from the project's gold (crowd.em.auto); the run's
-- `method` stays what the project asked for, `chosen_method` is what was fitted. Runs from
-- before this migration have neither (null).
ALTER TABLE aggregation_runs
    ADD COLUMN chosen_method text,
    ADD COLUMN choice_reason text;

-- New projects use `auto` unless they say otherwise (the API sends it too).
ALTER TABLE projects ALTER COLUMN method SET DEFAULT 'auto';
