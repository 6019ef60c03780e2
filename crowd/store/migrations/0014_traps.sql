-- 0014: traps for reviewers who accept everything (issue 12). A trap is a gold task served in
-- the review lane with a wrong proposal (assignments.proposal <> tasks.gold); the answer
-- catches it when it differs from the proposal. `qc_min_trap_catch` bans a worker whose catch
-- rate is below it with probability qc_confidence (docs/QUALITY.md, docs/REVIEW.md).
ALTER TABLE projects ADD COLUMN qc_min_trap_catch real;
-- A project's review answers by worker: trap counts for GET .../workers and the ban rule.
CREATE INDEX assignments_reviewed ON assignments (project_id, worker_id)
    WHERE proposal IS NOT NULL AND status = 'answered';
