-- The delivery queue, filled by the `delivery_outbox` projection from committed `CodeSent`
-- events (one row per challenge, written in the same transaction as the projection's
-- checkpoint, so a code is queued exactly once however often the processor restarts), and
-- drained by the delivery worker: a row is claimed with FOR UPDATE SKIP LOCKED and a lease, so
-- several instances never send the same code at the same time, and a worker that dies
-- mid-send leaves a lease that expires and lets another retry (with the same idempotency key).
CREATE TABLE deliveries (
    challenge_id    text        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    aggregate_id    text        NOT NULL,
    channel         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
