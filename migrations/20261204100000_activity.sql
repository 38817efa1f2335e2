-- The `activity` projection: what the admin overview shows without reading events.
--
-- Successful sign-ins and wrong codes per tenant and UTC day (of the event's own time). These
-- are counters, not idempotent writes: the event processor applies each event once, committing
-- the counters and its checkpoint in one transaction, and a rebuild deletes them and counts again.
CREATE TABLE tenant_daily_activity (
    tenant_id    text   NOT NULL,
    day          date   NOT NULL,
    sign_ins     bigint NOT NULL DEFAULT 0,
    failed_codes bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

-- Per user: the end of the lockout in force (NULL once it was cleared, the user reset or a code
-- passed; an admin-only lock ends a century away), and the last completed sign-in. A row exists
-- once any of these happened to the user (so rows do not depend on how the processor cut its
-- batches). "Locked out now" is `locked_until > now`.
CREATE TABLE user_activity (
    tenant_id       text        NOT NULL,
    user_id         text        NOT NULL,
    locked_until    timestamptz,
    last_sign_in_at timestamptz,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE INDEX user_activity_locked ON user_activity (tenant_id, locked_until)
    WHERE locked_until IS NOT NULL;
