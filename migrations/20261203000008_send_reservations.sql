-- Send budgets and destination caps (issue 14, point 8). Before a code is issued, its send
-- reserves one slot in each bucket it counts toward -- the tenant's hourly SMS or email budget,
-- and the destination's 10-minute caps in the tenant and across the service -- in one
-- transaction under an advisory lock per bucket: count the window's rows, insert if under the
-- limit. So parallel sends on any number of instances never pass a limit, and a send whose
-- command then fails gives its slots back (deleted by challenge id).
--
-- Destinations are PII sealed at rest: their buckets are keyed hashes (HMAC under the server's
-- pepper), never the address or number. Rows live as long as their window (`expires_at`) and
-- are pruned by later reservations, so the table stays bounded. Nothing here is keyed by user,
-- so disabling or resetting 2FA forgets nothing.
CREATE TABLE send_reservations (
    bucket       text        NOT NULL,
    reserved_at  timestamptz NOT NULL,
    challenge_id text        NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (bucket, reserved_at, challenge_id)
);

CREATE INDEX send_reservations_expiry ON send_reservations (expires_at);

-- The tenants' SMS budgets used to be counted from the last hour's `CodeSent` events: carry
-- that hour over, so an upgrade does not hand every tenant a fresh budget.
INSERT INTO send_reservations (bucket, reserved_at, challenge_id, expires_at)
SELECT 'tenant/' || tenant_id || '/' || lower(payload->'CodeSent'->>'channel'),
       recorded_at,
       payload->'CodeSent'->>'challenge_id',
       recorded_at + interval '1 hour'
FROM events
WHERE event_type = 'CodeSent' AND recorded_at > now() - interval '1 hour'
  AND payload->'CodeSent'->>'challenge_id' IS NOT NULL
ON CONFLICT DO NOTHING;

-- Nothing counts `CodeSent` events any more: the partial index only cost inserts.
DROP INDEX IF EXISTS events_code_sent_by_tenant_time;
