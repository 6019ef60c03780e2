-- 0012: review lane (issue 12). The label a model proposed to the worker when this assignment
-- was served, as an index into projects.labels; NULL for a blind assignment (no proposal shown).
-- Aggregation treats an answer given beside a proposal as different evidence from a blind one.
ALTER TABLE assignments ADD COLUMN proposal smallint;
