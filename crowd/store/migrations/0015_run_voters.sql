-- 0015: what a run estimates beyond the workers (issue 12, aggregation that knows who saw what).
-- Each requester model whose predictions vote in the fit: its estimated accuracy and confusion
-- matrix, as [{"model", "predictions", "accuracy", "confusion", "gold_predictions",
-- "gold_correct"}]; NULL for a run without voting models. The next run warm-starts from it.
ALTER TABLE aggregation_runs ADD COLUMN voters jsonb;
-- Each worker's estimated probability of accepting whatever proposal is shown (review lane);
-- NULL for a worker without review answers.
ALTER TABLE project_workers ADD COLUMN stamp_rate double precision;
