-- A stream never has a gap: an event at sequence n > 1 is written only beside its predecessor.
-- The primary key refuses a sequence taken twice, but not one written past a hole, and a hole
-- appears when a command builds on a state the database no longer holds: a restart or failover
-- that lost the last commits (asynchronous commit or replication) frees their sequence numbers,
-- and an instance's in-memory state (decision 162) still counts them. The statement is refused
-- as a serialization failure, which the writer reports as a conflict: the command decides
-- again on what the database holds.
CREATE FUNCTION events_gapless() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM appended n
        WHERE n.sequence > 1
          AND NOT EXISTS (
              SELECT 1 FROM events e
              WHERE e.aggregate_type = n.aggregate_type
                AND e.aggregate_id = n.aggregate_id
                AND e.sequence = n.sequence - 1)
    ) THEN
        RAISE EXCEPTION 'an event without its predecessor: the stream changed since it was read'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER events_gapless AFTER INSERT ON events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION events_gapless();
