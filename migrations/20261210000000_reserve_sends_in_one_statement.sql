-- A send's reservation in one round trip (decision 166). The same steps as before -- the
-- buckets' advisory locks in a fixed order, a bounded prune, the window's count, the insert --
-- ran as eight statements of one transaction, and the tenant's budget lock was held across all
-- their round trips: every code of a tenant queued behind the previous one's round trips, so a
-- tenant could not send more than about 500 codes per second.
--
-- VOLATILE: under READ COMMITTED each statement in the function takes a new snapshot, so the
-- count, which runs after the locks, sees every reservation committed before this one got them.
-- Called as one autocommit statement, the locks are released when it commits, as before.
-- Without sequential scans: the function's plans are cached per connection, and one made while
-- the table was small would keep scanning all of it, under the tenant's lock, until the next
-- autoanalyze.
-- Returns no row when every cap had room (the slots are taken), else the first full cap
-- (0-based, in the caller's order) and that bucket's oldest reservation in its window.
CREATE FUNCTION twofold_reserve_sends(
    lock_class integer,
    lock_keys integer[],
    buckets text[],
    limits bigint[],
    sinces timestamptz[],
    expiries timestamptz[],
    reserved timestamptz,
    challenge text,
    prune_batch bigint
) RETURNS TABLE (refused_cap integer, oldest timestamptz)
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
DECLARE
    lock_key integer;
    cap record;
BEGIN
    -- Sorted and distinct by the caller, so two reservations sharing buckets never deadlock.
    FOREACH lock_key IN ARRAY lock_keys LOOP
        PERFORM pg_advisory_xact_lock(lock_class, lock_key);
    END LOOP;
    DELETE FROM send_reservations WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM send_reservations WHERE expires_at < reserved
        LIMIT prune_batch FOR UPDATE SKIP LOCKED));
    FOR cap IN
        SELECT c.n, c.lim, count(s.bucket) AS used, min(s.reserved_at) AS first_in_window
        FROM unnest(buckets, sinces, limits) WITH ORDINALITY AS c(name, since, lim, n)
        LEFT JOIN send_reservations s ON s.bucket = c.name AND s.reserved_at > c.since
        GROUP BY c.n, c.lim
        ORDER BY c.n
    LOOP
        IF cap.used >= cap.lim THEN
            refused_cap := cap.n - 1;
            oldest := cap.first_in_window;
            RETURN NEXT;
            RETURN;
        END IF;
    END LOOP;
    INSERT INTO send_reservations (bucket, reserved_at, challenge_id, expires_at)
    SELECT c.name, reserved, challenge, c.expiry
    FROM unnest(buckets, expiries) AS c(name, expiry)
    ON CONFLICT DO NOTHING;
END
$$;
