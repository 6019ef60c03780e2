-- 0004: webhooks. A project registers URLs for events; every event is recorded as one
-- delivery row per subscribed webhook, in the same transaction as what it reports (an
-- outbox), and an RQ job (crowd.webhooks.deliver) sends it, retrying with backoff.

CREATE TABLE webhooks (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url         text NOT NULL,
    events      text[] NOT NULL,
    -- The HMAC key deliveries are signed with. It has to be stored as it is (signing needs
    -- it); the API shows it only in the response that creates the webhook.
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_project ON webhooks (project_id, id);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    project_id       bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    event            text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    finished_at      timestamptz
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id);
-- The maintenance sweep looks for pending deliveries whose job was lost.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (id) WHERE status = 'pending';

-- The run that reported the task complete (task.completed), 0 for tasks already complete
-- when the project's first task.completed webhook was registered; reset to NULL when the
-- task is open again, so it is reported again when it completes again. Tracked only while
-- the project has a task.completed webhook.
ALTER TABLE tasks ADD COLUMN completed_run_id bigint;
-- Tasks dynamic overlap closed and no run reported yet (a settings change can close tasks
-- whose result did not change, so they are not among the results a run writes).
CREATE INDEX tasks_done_unreported ON tasks (project_id, id)
    WHERE done AND completed_run_id IS NULL AND gold IS NULL;
