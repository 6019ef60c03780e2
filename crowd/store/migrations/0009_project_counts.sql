-- 0009: a project's progress counts, maintained in the transactions that change tasks, so that
-- GET /projects/{id} reads a few counter rows instead of counting the project's tasks.
--
-- Rows are keyed by (project, shard, target). The shard is the changing backend's pid modulo
-- 64: one backend runs one transaction at a time, so concurrent answers to one project add to
-- different rows and never queue on one counter row. The target is the task's answer target:
-- whether a task is complete depends on the project's settings (confidence_target and the
-- overlap cap, which a PATCH can change), so the counters keep, per target, how many open
-- tasks have all their slots answered (`full`), and the read applies the current settings:
--   complete = sum(done) + sum(full) over targets >= cap (all targets with fixed overlap),
-- which is crowd.store.projects.COMPLETE, counted. No count needs redoing when settings change.

CREATE TABLE project_counts (
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    shard       smallint NOT NULL,
    target      integer NOT NULL,
    tasks       bigint NOT NULL DEFAULT 0,   -- regular (non-gold) tasks
    gold_tasks  bigint NOT NULL DEFAULT 0,
    answers     bigint NOT NULL DEFAULT 0,   -- sum(tasks.answers), gold tasks included
    done        bigint NOT NULL DEFAULT 0,   -- regular tasks closed (tasks.done)
    "full"      bigint NOT NULL DEFAULT 0,   -- regular tasks not done with answers >= target
    PRIMARY KEY (project_id, shard, target)
);

-- Add task rows' contributions (sign +1 for a row that arrives, -1 for one that goes) to
-- their counters. Parallel arrays, one element per row: the one place the counts are defined.
CREATE FUNCTION project_counts_add(
    project_ids bigint[], targets integer[], golds smallint[], answers_ integer[],
    dones boolean[], signs integer[]
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO project_counts AS c
        (project_id, shard, target, tasks, gold_tasks, answers, done, "full")
    SELECT r.project_id, pg_backend_pid() % 64, r.target,
           sum(r.sign * (r.gold IS NULL)::int), sum(r.sign * (r.gold IS NOT NULL)::int),
           sum(r.sign * r.answers), sum(r.sign * (r.gold IS NULL AND r.done)::int),
           sum(r.sign * (r.gold IS NULL AND NOT r.done AND r.answers >= r.target)::int)
    FROM unnest(project_ids, targets, golds, answers_, dones, signs)
        AS r(project_id, target, gold, answers, done, sign)
    GROUP BY r.project_id, r.target
    ORDER BY r.project_id, r.target  -- counter rows locked in one order: no deadlock
    ON CONFLICT (project_id, shard, target) DO UPDATE SET
        tasks = c.tasks + EXCLUDED.tasks, gold_tasks = c.gold_tasks + EXCLUDED.gold_tasks,
        answers = c.answers + EXCLUDED.answers, done = c.done + EXCLUDED.done,
        "full" = c."full" + EXCLUDED."full"
$$;

-- Changed tasks (their answers, target, done or gold): the old contributions out, the new in,
-- once per statement. A row trigger would update one counter row once per changed task, and
-- within one transaction each update of a row walks the versions the earlier ones left: a
-- run changing 100,000 tasks' targets would take minutes. A statement that changes none of
-- these columns (a reservation, a skip, a release) finds no changed row and stops there.
CREATE FUNCTION project_counts_tasks_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM project_counts_add(
        array_agg(c.project_id), array_agg(c.target), array_agg(c.gold), array_agg(c.answers),
        array_agg(c.done), array_agg(c.sign))
    FROM (
        SELECT o.project_id, o.target, o.gold, o.answers, o.done, o.id, n.project_id AS p2,
               n.target AS t2, n.gold AS g2, n.answers AS a2, n.done AS d2
        FROM old_tasks o JOIN new_tasks n ON n.id = o.id
        WHERE o.answers <> n.answers OR o.target <> n.target OR o.done <> n.done
           OR o.gold IS DISTINCT FROM n.gold OR o.project_id <> n.project_id
    ) x
    CROSS JOIN LATERAL (VALUES (x.project_id, x.target, x.gold, x.answers, x.done, -1),
                               (x.p2, x.t2, x.g2, x.a2, x.d2, 1))
        AS c(project_id, target, gold, answers, done, sign)
    HAVING count(*) > 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER project_counts_tasks_updated AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks FOR EACH STATEMENT
    EXECUTE FUNCTION project_counts_tasks_updated();

-- Inserted and deleted tasks: once per statement, so a batch of 10,000 tasks costs one
-- aggregate, not 10,000 calls. Both triggers name their transition table `changed_tasks`.
-- Deleted tasks of a project being deleted count for nothing (its counters go with it).
CREATE FUNCTION project_counts_tasks_came_or_went() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM project_counts_add(
        array_agg(t.project_id), array_agg(t.target), array_agg(t.gold), array_agg(t.answers),
        array_agg(t.done), array_agg(CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END))
    FROM changed_tasks t
    WHERE TG_OP = 'INSERT' OR EXISTS (SELECT 1 FROM projects p WHERE p.id = t.project_id)
    HAVING count(*) > 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER project_counts_tasks_inserted AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS changed_tasks FOR EACH STATEMENT
    EXECUTE FUNCTION project_counts_tasks_came_or_went();
CREATE TRIGGER project_counts_tasks_deleted AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS changed_tasks FOR EACH STATEMENT
    EXECUTE FUNCTION project_counts_tasks_came_or_went();

-- The counts of the tasks already there.
INSERT INTO project_counts (project_id, shard, target, tasks, gold_tasks, answers, done, "full")
SELECT project_id, 0, target, count(*) FILTER (WHERE gold IS NULL),
       count(*) FILTER (WHERE gold IS NOT NULL), coalesce(sum(answers), 0),
       count(*) FILTER (WHERE gold IS NULL AND done),
       count(*) FILTER (WHERE gold IS NULL AND NOT done AND answers >= target)
FROM tasks GROUP BY project_id, target;
