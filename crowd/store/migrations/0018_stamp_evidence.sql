-- 0018: the trap rule judges stamping (issue 12). Per worker, the last run's evidence about
-- its stamp rate from all of its review answers (crowd.em.stamping.stamp_evidence): its
-- review answers, and the effective record "stamp_looked of stamp_n review answers known
-- looked at or stamped" with the same posterior mean and variance. NULL before a run with
-- review answers saw the worker. The run recomputes them from all answers, so incremental
-- runs need nothing more.
ALTER TABLE project_workers
    ADD COLUMN review_answers integer,
    ADD COLUMN stamp_n double precision,
    ADD COLUMN stamp_looked double precision;
