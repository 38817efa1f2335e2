-- A send's reservation in one round trip, counted per minute (decision 166).
--
-- The steps were eight statements of one transaction, with the tenant's budget lock held across
-- all their round trips; and the count read every reservation of the window, so with a tenant
-- near its hourly budget (10,000 emails by default) each send read 10,000 rows under that lock.
-- A tenant could not send more than a few hundred codes a second, fewer the more it had sent.
--
-- Now: the reservation rows stay (a send that is not issued gives its slots back by challenge
-- id, exactly once), and `send_counts` keeps how many rows each bucket has per minute. A window is
-- counted in whole minutes, from the minute it begins in: a send up to a minute older than the
-- window still counts, the safe side for a cap, and a count reads at most 61 rows per cap.
CREATE TABLE send_counts (
    bucket text        NOT NULL,
    minute timestamptz NOT NULL,
    sends  integer     NOT NULL,
    PRIMARY KEY (bucket, minute)
);
CREATE INDEX send_counts_by_minute ON send_counts (minute);

-- The counts follow the rows by construction: every insert and delete of a reservation, by
-- this function, a release, a prune, or an instance of the previous version still running
-- during a rolling deploy (it inserts rows and knows nothing of the counts). Minutes are cut in
-- UTC, whatever the session's time zone.
CREATE FUNCTION send_counts_follow_reservations() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO send_counts AS k (bucket, minute, sends)
        VALUES (NEW.bucket, date_trunc('minute', NEW.reserved_at, 'UTC'), 1)
        ON CONFLICT (bucket, minute) DO UPDATE SET sends = k.sends + 1;
        RETURN NEW;
    END IF;
    UPDATE send_counts SET sends = sends - 1
    WHERE bucket = OLD.bucket AND minute = date_trunc('minute', OLD.reserved_at, 'UTC');
    RETURN OLD;
END
$$;

LOCK TABLE send_reservations IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO send_counts (bucket, minute, sends)
SELECT bucket, date_trunc('minute', reserved_at, 'UTC'), count(*)
FROM send_reservations
GROUP BY 1, 2;
CREATE TRIGGER send_counts_follow_reservations
    AFTER INSERT OR DELETE ON send_reservations
    FOR EACH ROW EXECUTE FUNCTION send_counts_follow_reservations();

-- One autocommit statement: the locks are released when it commits, as before. VOLATILE: under
-- READ COMMITTED each statement in the function takes a new snapshot, so the count, which runs
-- after the locks, sees every reservation committed before this one got them. Without
-- sequential scans: the function's plans are cached per connection, and one made while a table
-- was small would keep scanning all of it, under the tenant's lock, until the next autoanalyze.
--
-- Returns no row when every cap had room (the slots are taken), else the first full cap
-- (0-based, in the caller's order) and when that cap's oldest counted minute leaves its window.
CREATE FUNCTION twofold_reserve_sends(
    lock_class integer,
    lock_keys integer[],
    buckets text[],
    limits bigint[],
    sinces timestamptz[],
    expiries timestamptz[],
    reserved timestamptz,
    challenge text,
    prune_batch bigint,
    counts_before timestamptz
) RETURNS TABLE (refused_cap integer, frees_at timestamptz)
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
    DELETE FROM send_counts WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM send_counts WHERE minute < counts_before
        LIMIT prune_batch FOR UPDATE SKIP LOCKED));
    FOR cap IN
        SELECT c.n, c.lim, c.since, c.window_start,
               (SELECT coalesce(sum(k.sends), 0) FROM send_counts k
                 WHERE k.bucket = c.name AND k.minute >= c.window_start) AS used,
               (SELECT min(k.minute) FROM send_counts k
                 WHERE k.bucket = c.name AND k.minute >= c.window_start AND k.sends > 0)
                 AS first_minute
        FROM (SELECT u.name, u.lim, u.n, u.since, date_trunc('minute', u.since, 'UTC') AS window_start
              FROM unnest(buckets, sinces, limits) WITH ORDINALITY AS u(name, since, lim, n)) c
        ORDER BY c.n
    LOOP
        IF cap.used >= cap.lim THEN
            refused_cap := cap.n - 1;
            -- The oldest counted minute's sends stop counting once the window starts after it.
            frees_at := coalesce(cap.first_minute, cap.window_start)
                        + (reserved - cap.since) + interval '1 minute';
            RETURN NEXT;
            RETURN;
        END IF;
    END LOOP;
    -- The trigger counts each row inserted.
    INSERT INTO send_reservations (bucket, reserved_at, challenge_id, expires_at)
    SELECT c.name, reserved, challenge, c.expiry
    FROM unnest(buckets, expiries) AS c(name, expiry)
    ON CONFLICT DO NOTHING;
END
$$;
