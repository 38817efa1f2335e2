-- The commit horizon in one round trip (infra/src/pg/horizon.rs, decision 150).
--
-- Its three steps must run in this order, each with a snapshot of its own: drop the transaction's
-- kept read of pg_stat_activity; list the running transactions of other databases; then take the
-- snapshot whose running ids, less those listed, give the horizon. In one SQL statement the
-- snapshot would come first (pg_current_snapshot() is the statement's). A VOLATILE function takes
-- a fresh snapshot for each statement it runs (under READ COMMITTED), so here the snapshot is
-- taken after the list, without the two extra round trips three statements from the service cost
-- on every processor batch.
CREATE FUNCTION twofold_commit_horizon() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    elsewhere bigint[];
    horizon bigint;
BEGIN
    PERFORM pg_stat_clear_snapshot();
    -- A lock is matched to its backend by process id and by the backend's own transaction id,
    -- which is never reused: a process id reused between the two views' reads cannot stand for
    -- another backend.
    SELECT coalesce(array_agg(l.transactionid::text::bigint), '{}')
    INTO elsewhere
    FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid AND a.backend_xid = l.transactionid
    WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
      AND a.datid IS NOT NULL
      AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database());
    -- As bigint: min() over xid8 exists only from PostgreSQL 15.
    WITH s AS (SELECT pg_current_snapshot() AS snap)
    SELECT least(
        pg_snapshot_xmax(s.snap)::text::bigint,
        (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s.snap) AS x
         WHERE x IS DISTINCT FROM pg_current_xact_id_if_assigned()
           AND (x::text::bigint % 4294967296) <> ALL (elsewhere))
    )
    INTO horizon
    FROM s;
    RETURN horizon;
END
$$;
