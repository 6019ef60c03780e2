-- 0017: incremental runs (issue 14). A run keeps a project's answers between runs
-- (crowd/store/answer_state.py) and reads from PostgreSQL only the answers its kept copy lacks.
--
-- * assignments.answered_xid: the transaction that answered the row (set by the answer's
--   statement, or by the trigger below for any other statement that makes a row answered).
--   A kept copy remembers the snapshot it was read in; the next run reads the rows whose
--   answered_xid that snapshot did not see (pg_visible_in_snapshot), whatever order their
--   transactions committed in. Rows answered before this migration keep NULL: every kept copy
--   is first read whole, after this migration committed, so it has them.
-- * projects.answers_epoch: bumped in the transaction of anything that changes or removes an
--   answer a kept copy may hold (an answered row changed or un-answered, a row deleted, the
--   project's labels changed). A kept copy records the epoch it was read at and is used only
--   while the project's epoch is the same; else it is read again whole.
-- * projects.state_key: names the kept copy's folder. Random per project row, so a copy kept
--   for a project of another database (or a deleted project whose id came back in a restore)
--   is never taken for this one's.
-- Bans need no bump: a kept copy holds every answer, and a run leaves out the banned
-- workers' answers as it reads the project's bans in its own snapshot.

ALTER TABLE assignments ADD COLUMN answered_xid xid8;
ALTER TABLE assignments ALTER COLUMN answered_xid SET DEFAULT pg_current_xact_id();
CREATE INDEX assignments_answered_xid ON assignments (project_id, answered_xid)
    WHERE status = 'answered';

ALTER TABLE projects
    ADD COLUMN answers_epoch bigint NOT NULL DEFAULT 0,
    ADD COLUMN state_key uuid NOT NULL DEFAULT gen_random_uuid();

-- Which run read its answers how: 'incremental' (the kept copy and the new answers) or
-- 'full: <why>' (read whole: no copy kept here, the epoch moved, the hourly reload, a damaged
-- copy), and how long each phase took.
ALTER TABLE aggregation_runs
    ADD COLUMN load text,
    ADD COLUMN load_seconds double precision,
    ADD COLUMN fit_seconds double precision;

-- Any statement that makes a row answered and does not set answered_xid itself.
CREATE FUNCTION assignments_answered_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.answered_xid := pg_current_xact_id();
    RETURN NEW;
END
$$;
CREATE TRIGGER assignments_answered_xid BEFORE UPDATE ON assignments FOR EACH ROW
    WHEN (NEW.status = 'answered' AND OLD.status <> 'answered'
          AND NEW.answered_xid IS NOT DISTINCT FROM OLD.answered_xid)
    EXECUTE FUNCTION assignments_answered_xid();

-- An answered row changed in any way a run reads, or no longer answered. The WHEN clause is
-- evaluated without calling the function, so answering, reserving and expiring cost nothing.
CREATE FUNCTION assignments_answer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE projects SET answers_epoch = answers_epoch + 1
    WHERE id IN (OLD.project_id, NEW.project_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER assignments_answer_changed AFTER UPDATE ON assignments FOR EACH ROW
    WHEN (OLD.status = 'answered' AND (
        NEW.status <> 'answered' OR NEW.label IS DISTINCT FROM OLD.label
        OR NEW.task_id <> OLD.task_id OR NEW.worker_id <> OLD.worker_id
        OR NEW.project_id <> OLD.project_id OR NEW.id <> OLD.id
        OR NEW.proposal IS DISTINCT FROM OLD.proposal))
    EXECUTE FUNCTION assignments_answer_changed();

-- Deleted answers (a task or project deleted, or by hand): once per statement, so a project
-- deletion cascading over 10M rows bumps once, not 10M times.
CREATE FUNCTION assignments_answers_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE projects SET answers_epoch = answers_epoch + 1
    WHERE id IN (SELECT DISTINCT project_id FROM gone WHERE status = 'answered');
    RETURN NULL;
END
$$;
CREATE TRIGGER assignments_answers_deleted AFTER DELETE ON assignments
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION assignments_answers_deleted();

-- Labels renamed, added or removed: label indices may mean other classes now.
CREATE FUNCTION projects_labels_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.answers_epoch := OLD.answers_epoch + 1;
    RETURN NEW;
END
$$;
CREATE TRIGGER projects_labels_changed BEFORE UPDATE ON projects FOR EACH ROW
    WHEN (OLD.labels IS DISTINCT FROM NEW.labels)
    EXECUTE FUNCTION projects_labels_changed();
