-- Prunes only when due (decision 168): an instance's batch prunes expired reservations and
-- counts once per 100 ms or per 250 reservation rows written, whichever comes first, and
-- passes `prune_batch` 0 otherwise, which skips both prune statements. An empty prune still
-- cost a statement and its delete trigger on every batch (about a seventh of the batch's time
-- in the bench's delivery phase).
--
-- The same function otherwise, and the same signature, so instances of the previous version
-- that are already running (they pass 200 to every batch) keep pruning on every batch during
-- a rolling deploy.
CREATE OR REPLACE FUNCTION twofold_reserve_send_batch(
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
    -- A batch with nothing to prune (prune_batch 0) runs neither statement, nor the delete
    -- trigger each would fire even when it deleted nothing.
    IF prune_batch > 0 THEN
        DELETE FROM send_reservations WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM send_reservations WHERE expires_at < oldest
            LIMIT prune_batch FOR UPDATE SKIP LOCKED));
        DELETE FROM send_counts WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM send_counts WHERE minute < counts_until
            LIMIT prune_batch FOR UPDATE SKIP LOCKED));
    END IF;
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
