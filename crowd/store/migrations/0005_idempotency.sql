-- 0005: Idempotency-Key. The response of a creating POST, stored in the transaction that made
-- its effect, so a client retrying after a lost response gets that response back instead of a
-- second effect. Keys belong to the account that sent them and expire after 24 hours.

CREATE TABLE idempotency_keys (
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key         text NOT NULL,
    request     text NOT NULL,      -- method and path, e.g. 'POST /api/v1/projects'
    body_hash   bytea NOT NULL,     -- sha256 of the request body
    status      smallint NOT NULL,  -- the stored response: status and JSON body
    response    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);
-- The maintenance sweep deletes expired keys oldest first. Rows arrive in created_at order, so
-- a BRIN index finds them at almost no cost per insert (a key is stored with most answers).
CREATE INDEX idempotency_keys_created ON idempotency_keys USING brin (created_at);
