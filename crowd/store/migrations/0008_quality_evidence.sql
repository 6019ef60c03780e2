-- 0008: quality rules that judge with evidence (crowd.em.quality, docs/QUALITY.md).

-- A worker is banned when the posterior probability of being below a rule's threshold is at
-- least this.
ALTER TABLE projects ADD COLUMN qc_confidence double precision NOT NULL DEFAULT 0.95
    CHECK (qc_confidence > 0.5 AND qc_confidence < 1);

-- accuracy_n, accuracy_right: the answers the model judged by the other answers to their
--   tasks (weighted by how sure those make it) and how many of them it expects right
--   (crowd.em.live.held_out_correct): the evidence of the model's accuracy rule.
-- evidence: per rule, the estimate, its 95% interval, the probability of being below the
--   threshold and the answers still needed for a decision, as of the last run.
-- ban_rule: the rule that banned the worker (NULL: banned by hand, or not banned).
-- evidence_reversed: that rule's evidence now points the other way; the ban stays until
--   the requester lifts it.
ALTER TABLE project_workers
    ADD COLUMN accuracy_n double precision,
    ADD COLUMN accuracy_right double precision,
    ADD COLUMN evidence jsonb,
    ADD COLUMN ban_rule text,
    ADD COLUMN evidence_reversed boolean NOT NULL DEFAULT false;
