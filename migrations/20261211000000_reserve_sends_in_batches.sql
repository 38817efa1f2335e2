-- Send reservations in batches (decision 167).
--
-- One reservation per statement held a tenant's budget lock through its commit's flush to disk,
-- so a tenant's sends of one channel went through one at a time: about a thousand a second on a
-- fast disk, far fewer on a slow one. An instance now queues the reservations that arrive while
-- one is being written and writes them all with one statement: one set of locks, one commit.
--
-- The per-minute counts are now kept by statement-level triggers: a batch that inserts thirty
-- rows into one bucket and minute adds thirty to its count once, instead of updating the same
-- row thirty times. Each trigger locks the count rows it changes in (bucket, minute) order, so
-- two transactions that change the same counts (two batches, a batch and a release, two
-- prunes) wait for each other in one direction only and cannot deadlock.
--
-- `twofold_reserve_sends` stays for instances of the previous version during a rolling deploy:
-- its rows are counted by the same triggers.
DROP TRIGGER send_counts_follow_reservations ON send_reservations;
DROP FUNCTION send_counts_follow_reservations();

CREATE FUNCTION send_counts_add_reservations() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    INSERT INTO send_counts AS k (bucket, minute, sends)
    SELECT bucket, date_trunc('minute', reserved_at, 'UTC'), count(*)
    FROM added
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (bucket, minute) DO UPDATE SET sends = k.sends + EXCLUDED.sends;
    RETURN NULL;
END
$$;

-- Only rows that had not expired come off the counts: a release, which gives back a send that
-- was not issued. An expired row, deleted by a prune, lies before its bucket's window (or in
-- the minute the window starts in, where counting it is the safe side), so its count no longer
-- matters and is pruned with its minute. A prune therefore locks no counts: one tenant's prune
-- never waits for another tenant's sends.
CREATE FUNCTION send_counts_remove_reservations() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    -- Rows are locked as the sort emits them, so in key order.
    PERFORM 1
    FROM send_counts k
    JOIN (SELECT DISTINCT bucket, date_trunc('minute', reserved_at, 'UTC') AS minute
          FROM removed WHERE expires_at >= now()) r ON k.bucket = r.bucket AND k.minute = r.minute
    ORDER BY k.bucket, k.minute
    FOR UPDATE OF k;
    UPDATE send_counts k SET sends = k.sends - r.n
    FROM (SELECT bucket, date_trunc('minute', reserved_at, 'UTC') AS minute, count(*) AS n
          FROM removed WHERE expires_at >= now() GROUP BY 1, 2) r
    WHERE k.bucket = r.bucket AND k.minute = r.minute;
    RETURN NULL;
END
$$;

CREATE TRIGGER send_counts_add_reservations
    AFTER INSERT ON send_reservations
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION send_counts_add_reservations();
CREATE TRIGGER send_counts_remove_reservations
    AFTER DELETE ON send_reservations
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION send_counts_remove_reservations();

-- Reserves for several sends at once, in their order: each is granted only if every one of its
-- caps has room, counting the sends granted before it in the batch. One autocommit statement,
-- like `twofold_reserve_sends`: the locks (every bucket of the batch, sorted and distinct by
-- the caller) are released when it commits. VOLATILE, so the count, which runs after the
-- locks, sees every reservation committed before this statement got them; without sequential
-- scans, so a plan cached while a table was small does not scan all of it under the locks.
-- Each lock is waited for at most `lock_wait_ms`.
--
-- `owners` gives, for each cap, the reservation it belongs to (1-based); a reservation's caps
-- are consecutive and in the order a refusal is reported. `reserved` and `challenges` are per
-- reservation. Returns a row for each refused reservation (0-based), with its first full cap
-- (0-based among its own) and when that cap's oldest counted minute leaves its window.
CREATE FUNCTION twofold_reserve_send_batch(
    lock_class integer,
    lock_keys integer[],
    owners integer[],
    buckets text[],
    limits bigint[],
    sinces timestamptz[],
    expiries timestamptz[],
    reserved timestamptz[],
    challenges text[],
    prune_batch bigint,
    counts_before timestamptz,
    lock_wait_ms integer
) RETURNS TABLE (reservation integer, refused_cap integer, frees_at timestamptz)
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
DECLARE
    lock_key integer;
    used bigint[];
    first_minutes timestamptz[];
    -- Sends granted so far in this batch, per bucket.
    taken jsonb := '{}';
    granted integer[] := '{}';
    caps integer := coalesce(array_length(owners, 1), 0);
    head integer := 1;
    -- Expiry is judged by the earlier of this instance's clock and the database's, so an
    -- instance whose clock runs ahead prunes nothing another instance still counts (and a
    -- prune never takes a row off the counts: the trigger judges by the database's clock).
    sent timestamptz := (SELECT min(t) FROM unnest(reserved) AS t);
    oldest timestamptz := least(sent, now());
    counts_until timestamptz := least(counts_before, now() - (sent - counts_before));
    past integer;
    full_cap integer;
    extra bigint;
    r integer;
    k integer;
BEGIN
    -- A lock held for longer (a stalled transaction) fails the batch, which took nothing, rather
    -- than leave the lane's sends, and their tenant's share of the instance, waiting on it.
    PERFORM set_config('lock_timeout', lock_wait_ms || 'ms', true);
    FOREACH lock_key IN ARRAY lock_keys LOOP
        PERFORM pg_advisory_xact_lock(lock_class, lock_key);
    END LOOP;
    DELETE FROM send_reservations WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM send_reservations WHERE expires_at < oldest
        LIMIT prune_batch FOR UPDATE SKIP LOCKED));
    DELETE FROM send_counts WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM send_counts WHERE minute < counts_until
        LIMIT prune_batch FOR UPDATE SKIP LOCKED));
    SELECT array_agg(coalesce(s.used, 0) ORDER BY u.n), array_agg(s.first_minute ORDER BY u.n)
    INTO used, first_minutes
    FROM unnest(buckets, sinces) WITH ORDINALITY AS u(name, since, n)
    CROSS JOIN LATERAL (
        SELECT sum(c.sends) AS used, min(c.minute) FILTER (WHERE c.sends > 0) AS first_minute
        FROM send_counts c
        WHERE c.bucket = u.name AND c.minute >= date_trunc('minute', u.since, 'UTC')) s;
    FOR r IN 1..coalesce(array_length(challenges, 1), 0) LOOP
        past := head;
        full_cap := 0;
        WHILE past <= caps AND owners[past] = r LOOP
            extra := coalesce((taken ->> buckets[past])::bigint, 0);
            IF full_cap = 0 AND used[past] + extra >= limits[past] THEN
                full_cap := past;
            END IF;
            past := past + 1;
        END LOOP;
        IF full_cap > 0 THEN
            extra := coalesce((taken ->> buckets[full_cap])::bigint, 0);
            reservation := r - 1;
            refused_cap := full_cap - head;
            -- The oldest counted minute's sends stop counting once the window starts after it;
            -- sends granted in this batch are in the current minute.
            frees_at := coalesce(
                first_minutes[full_cap],
                CASE WHEN extra > 0 THEN date_trunc('minute', reserved[r], 'UTC')
                     ELSE date_trunc('minute', sinces[full_cap], 'UTC') END)
                + (reserved[r] - sinces[full_cap]) + interval '1 minute';
            RETURN NEXT;
        ELSE
            FOR k IN head..past - 1 LOOP
                taken := jsonb_set(taken, ARRAY[buckets[k]],
                    to_jsonb(coalesce((taken ->> buckets[k])::bigint, 0) + 1));
            END LOOP;
            granted := granted || r;
        END IF;
        head := past;
    END LOOP;
    -- The triggers count the rows inserted.
    INSERT INTO send_reservations (bucket, reserved_at, challenge_id, expires_at)
    SELECT u.name, reserved[u.owner], challenges[u.owner], u.expiry
    FROM unnest(owners, buckets, expiries) AS u(owner, name, expiry)
    WHERE u.owner = ANY(granted)
    ON CONFLICT DO NOTHING;
END
$$;
