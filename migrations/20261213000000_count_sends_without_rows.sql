-- Send reservations kept as per-minute counts alone (decision 171).
--
-- A reservation wrote a row per cap (three per send) into `send_reservations`, under two
-- indexes, and a statement trigger added those rows to `send_counts`; a release deleted the rows
-- and the other trigger took them off; a prune deleted them again an hour later. In the bench's
-- delivery phase that was about half of the database's time per code. The caps were always
-- judged on the counts: the rows only made a release safe to repeat.
--
-- Now a batch adds its grants to the counts itself, and a release takes a grant off the count of
-- the minute it was added to. The service gives a grant back at most once (a command that did
-- not issue its code, or a grant its caller dropped unread: one or the other, never both), and
-- a give-back that fails is not repeated: the slot stays counted, the safe side for a cap.
--
-- Rolling deploy: instances of the previous version still call `twofold_reserve_send_batch`
-- and delete their rows to give back; the triggers stay, so their sends are counted as before.
-- Both functions take the same advisory locks before counting, so a cap stays exact across the
-- two versions. Their rows are pruned by both (the new function's prune finds none once the
-- last of them has expired).

-- Reserves for several sends at once, in their order: each is granted only if every one of its
-- caps has room, counting the sends granted before it in the batch. One autocommit statement:
-- the locks (every bucket of the batch, sorted and distinct by the caller) are released when it
-- commits. VOLATILE, so the count, which runs after the locks, sees every reservation committed
-- before this statement got them; without sequential scans, so a plan cached while a table was
-- small does not scan all of it under the locks. Each lock is waited for at most `lock_wait_ms`;
-- `prune_batch` 0 skips the prune.
--
-- `owners` gives, for each cap, the reservation it belongs to (1-based); a reservation's caps
-- are consecutive and in the order a refusal is reported. `reserved` is per reservation.
-- Returns a row for each refused reservation (0-based), with its first full cap (0-based among
-- its own) and when that cap's oldest counted minute leaves its window.
CREATE FUNCTION twofold_reserve_send_counts(
    lock_class integer,
    lock_keys integer[],
    owners integer[],
    buckets text[],
    limits bigint[],
    sinces timestamptz[],
    reserved timestamptz[],
    prune_batch bigint,
    counts_before timestamptz,
    lock_wait_ms integer
) RETURNS TABLE (reservation integer, refused_cap integer, frees_at timestamptz)
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
DECLARE
    lock_key integer;
    used bigint[];
    first_minutes timestamptz[];
    -- For each cap, the first cap of the batch with its bucket: where the batch's grants to
    -- that bucket are tallied.
    same integer[];
    caps integer := coalesce(array_length(owners, 1), 0);
    taken bigint[] := array_fill(0::bigint, ARRAY[caps]);
    granted integer[] := '{}';
    head integer := 1;
    -- Expiry is judged by the earlier of this instance's clock and the database's, so an
    -- instance whose clock runs ahead prunes nothing another instance still counts.
    sent timestamptz := (SELECT min(t) FROM unnest(reserved) AS t);
    oldest timestamptz := least(sent, now());
    counts_until timestamptz := least(counts_before, now() - (sent - counts_before));
    past integer;
    full_cap integer;
    r integer;
    k integer;
BEGIN
    -- The count must see every grant committed before the locks were taken: a snapshot taken
    -- once per transaction (a database or role set to REPEATABLE READ) would count from before
    -- them, and two batches could each see room for the last slot.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'send reservations are counted only under READ COMMITTED, not %',
            current_setting('transaction_isolation');
    END IF;
    -- Arrays that do not line up would leave caps unchecked (a NULL limit compares as no
    -- refusal): fail closed, taking nothing.
    IF coalesce(array_length(buckets, 1), 0) <> caps
       OR coalesce(array_length(limits, 1), 0) <> caps
       OR coalesce(array_length(sinces, 1), 0) <> caps THEN
        RAISE EXCEPTION 'a send reservation''s caps do not line up';
    END IF;
    -- A lock held for longer (a stalled transaction) fails the batch, which took nothing, rather
    -- than leave the lane's sends, and their tenant's share of the instance, waiting on it.
    PERFORM set_config('lock_timeout', lock_wait_ms || 'ms', true);
    FOREACH lock_key IN ARRAY lock_keys LOOP
        PERFORM pg_advisory_xact_lock(lock_class, lock_key);
    END LOOP;
    IF prune_batch > 0 THEN
        -- The previous version's rows: their counts were taken off, where they still counted,
        -- by the delete trigger.
        DELETE FROM send_reservations WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM send_reservations WHERE expires_at < oldest
            LIMIT prune_batch FOR UPDATE SKIP LOCKED));
        DELETE FROM send_counts WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM send_counts WHERE minute < counts_until
            LIMIT prune_batch FOR UPDATE SKIP LOCKED));
    END IF;
    SELECT array_agg(coalesce(s.used, 0) ORDER BY u.n), array_agg(s.first_minute ORDER BY u.n),
           array_agg(u.first ORDER BY u.n)
    INTO used, first_minutes, same
    FROM (SELECT x.name, x.since, x.n, min(x.n) OVER (PARTITION BY x.name)::integer AS first
          FROM unnest(buckets, sinces) WITH ORDINALITY AS x(name, since, n)) u
    CROSS JOIN LATERAL (
        SELECT sum(c.sends) AS used, min(c.minute) FILTER (WHERE c.sends > 0) AS first_minute
        FROM send_counts c
        WHERE c.bucket = u.name AND c.minute >= date_trunc('minute', u.since, 'UTC')) s;
    FOR r IN 1..coalesce(array_length(reserved, 1), 0) LOOP
        past := head;
        full_cap := 0;
        WHILE past <= caps AND owners[past] = r LOOP
            IF full_cap = 0 AND (used[past] + taken[same[past]] >= limits[past]) IS NOT FALSE THEN
                full_cap := past;
            END IF;
            past := past + 1;
        END LOOP;
        IF full_cap > 0 THEN
            reservation := r - 1;
            refused_cap := full_cap - head;
            -- The oldest counted minute's sends stop counting once the window starts after it;
            -- sends granted in this batch are in the current minute.
            frees_at := coalesce(
                first_minutes[full_cap],
                CASE WHEN taken[same[full_cap]] > 0 THEN date_trunc('minute', reserved[r], 'UTC')
                     ELSE date_trunc('minute', sinces[full_cap], 'UTC') END)
                + (reserved[r] - sinces[full_cap]) + interval '1 minute';
            RETURN NEXT;
        ELSE
            FOR k IN head..past - 1 LOOP
                taken[same[k]] := taken[same[k]] + 1;
            END LOOP;
            granted := granted || r;
        END IF;
        head := past;
    END LOOP;
    -- Every cap belonged to a reservation, in order: none was left unchecked.
    IF head <> caps + 1 THEN
        RAISE EXCEPTION 'a send reservation''s caps are not in the order of their reservations';
    END IF;
    -- In (bucket, minute) order, as the triggers and a give-back lock the counts, so two
    -- transactions changing the same counts wait for each other in one direction only.
    INSERT INTO send_counts AS k (bucket, minute, sends)
    SELECT u.name, date_trunc('minute', reserved[u.owner], 'UTC'), count(*)
    FROM unnest(owners, buckets) AS u(owner, name)
    WHERE u.owner = ANY(granted)
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (bucket, minute) DO UPDATE SET sends = k.sends + EXCLUDED.sends;
END
$$;

-- Gives back granted sends: one off the count of each cap's bucket, in the minute the grant was
-- added to. A count already pruned (its minute left every window) is not there to change.
CREATE FUNCTION twofold_give_back_sends(buckets text[], reserved timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
BEGIN
    -- Rows are locked as the sort emits them, so in key order.
    PERFORM 1
    FROM send_counts k
    JOIN (SELECT DISTINCT g.bucket, date_trunc('minute', g.at, 'UTC') AS minute
          FROM unnest(buckets, reserved) AS g(bucket, at)) r
      ON k.bucket = r.bucket AND k.minute = r.minute
    ORDER BY k.bucket, k.minute
    FOR UPDATE OF k;
    UPDATE send_counts k SET sends = greatest(k.sends - r.n, 0)
    FROM (SELECT g.bucket, date_trunc('minute', g.at, 'UTC') AS minute, count(*) AS n
          FROM unnest(buckets, reserved) AS g(bucket, at) GROUP BY 1, 2) r
    WHERE k.bucket = r.bucket AND k.minute = r.minute;
END
$$;
