-- One row per end user the tenant has shown us (enrolled, asked about at sign-in, ...), kept by
-- the `user_compliance` projection: what `compliance` reports without reading events. `enrolled`
-- mirrors the user aggregate's rule (an active TOTP, or a verified email or phone).
CREATE TABLE user_compliance (
    tenant_id      text        NOT NULL,
    user_id        text        NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    totp           boolean     NOT NULL DEFAULT false,
    email_verified boolean     NOT NULL DEFAULT false,
    phone_verified boolean     NOT NULL DEFAULT false,
    enrolled       boolean     GENERATED ALWAYS AS (totp OR email_verified OR phone_verified) STORED,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

-- The non-compliant list, in grace-end order (first seen, then id), one keyset page at a time.
CREATE INDEX user_compliance_not_enrolled
    ON user_compliance (tenant_id, first_seen_at, user_id) WHERE NOT enrolled;
