-- The event store. Columns up to `metadata` are the ones postgres-es reads and writes; the rest
-- are ours and filled in by PostgreSQL, so postgres-es's INSERT needs no change:
--   global_position  total order of insertion (not of commit: see tx_id)
--   tx_id            the writing transaction; readers process events in (tx_id, global_position)
--                    order and only below the oldest running transaction, so a transaction that
--                    commits late is never skipped (DESIGN.md section 2)
--   tenant_id        derived from the aggregate id, which the server always builds as
--                    "{tenant_id}/...": every tenant-scoped query filters on it
CREATE TABLE events (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 0),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    global_position bigserial   NOT NULL UNIQUE,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    tenant_id       text        GENERATED ALWAYS AS (split_part(aggregate_id, '/', 1)) STORED,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE INDEX events_commit_order ON events (tx_id, global_position);
CREATE INDEX events_by_tenant ON events (tenant_id, global_position);

-- Events are immutable: history is only ever appended to.
CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % is not allowed', TG_OP;
END $$;

CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- Wake the event processors when new events commit (NOTIFY is delivered at commit).
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('twofold_events', '');
    RETURN NULL;
END $$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- One row per consumer of the event log: the (tx_id, global_position) of the last event it
-- processed, written in the same transaction as the consumer's own writes.
CREATE TABLE projection_checkpoints (
    consumer      text        PRIMARY KEY,
    last_tx       xid8        NOT NULL DEFAULT '0',
    last_position bigint      NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
