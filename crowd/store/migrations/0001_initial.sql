-- 0001: accounts (tokens), projects, tasks, assignments.
-- Migrations are append-only: never edit a released file, add 0002_... instead.

CREATE TABLE accounts (
    id          bigserial PRIMARY KEY,
    role        text NOT NULL CHECK (role IN ('admin', 'requester', 'worker')),
    name        text NOT NULL DEFAULT '',
    -- sha256 of the bearer token; the token itself is shown once and never stored.
    token_hash  bytea NOT NULL UNIQUE,
    created_by  bigint REFERENCES accounts (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_created_by ON accounts (created_by, id);

CREATE TABLE projects (
    id             bigserial PRIMARY KEY,
    owner_id       bigint NOT NULL REFERENCES accounts (id),
    name           text NOT NULL,
    labels         text[] NOT NULL,
    overlap        integer NOT NULL CHECK (overlap >= 1),
    lease_seconds  integer NOT NULL CHECK (lease_seconds >= 1),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_owner ON projects (owner_id, id);

CREATE TABLE tasks (
    id           bigserial PRIMARY KEY,
    project_id   bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    external_id  text NOT NULL,
    data         jsonb NOT NULL,
    gold         smallint,            -- index into projects.labels, NULL when unknown
    target       integer NOT NULL,    -- answers this task needs
    taken        integer NOT NULL DEFAULT 0 CHECK (taken >= 0),   -- answers + live reservations
    answers      integer NOT NULL DEFAULT 0 CHECK (answers >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, external_id),
    CHECK (taken <= target)
);
-- The assignment queue: open tasks, partly answered first, then creation order.
CREATE INDEX tasks_open ON tasks (project_id, answers DESC, id) WHERE taken < target;
CREATE INDEX tasks_project ON tasks (project_id, id);

CREATE TABLE assignments (
    id           bigserial PRIMARY KEY,
    project_id   bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task_id      bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    worker_id    bigint NOT NULL REFERENCES accounts (id),
    status       text NOT NULL CHECK (status IN ('reserved', 'answered', 'skipped', 'expired')),
    label        smallint,            -- index into projects.labels once answered
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    answered_at  timestamptz,
    -- A worker sees a task at most once: this is what makes "never answers twice" hold.
    UNIQUE (task_id, worker_id),
    CHECK ((status = 'answered') = (label IS NOT NULL))
);
CREATE INDEX assignments_live ON assignments (project_id, expires_at) WHERE status = 'reserved';
CREATE INDEX assignments_answered ON assignments (project_id, id) WHERE status = 'answered';
CREATE INDEX assignments_worker ON assignments (worker_id);
