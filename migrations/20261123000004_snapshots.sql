-- Aggregate snapshots: a cache of an aggregate's state after `last_sequence`, so loading a user
-- with a long history reads the snapshot and the few events after it, not the whole stream.
-- Never a source of truth: a missing, stale or unreadable snapshot (or one of another
-- `state_version`, after the state's layout changed) only means a longer replay.
CREATE TABLE aggregate_snapshots (
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    last_sequence  bigint      NOT NULL,
    state_version  text        NOT NULL,
    state          jsonb       NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
