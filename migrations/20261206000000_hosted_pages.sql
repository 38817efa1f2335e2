-- Hosted pages (issue 19): the links a tenant's backend asks for, the browser session each one
-- opens, and the outcomes the backend redeems. Rows, not events: each is a credential found by
-- the keyed hash of its secret, and must be possible to delete.
CREATE TABLE hosted_sessions (
    link_hash    text        PRIMARY KEY,
    -- The link's public id: the tenant's backend keeps it with its own user session and must
    -- give it back to redeem the result (as OAuth's `state`).
    link_id      text        NOT NULL UNIQUE,
    -- Set when the link is opened: a link opens once.
    session_hash text        UNIQUE,
    tenant_id    text        NOT NULL,
    key_id       text        NOT NULL,
    user_id      text        NOT NULL,
    purpose      text        NOT NULL,
    return_url   text        NOT NULL,
    locale       text,
    created_at   timestamptz NOT NULL,
    opened_at    timestamptz,
    finished_at  timestamptz
);

CREATE INDEX hosted_sessions_created ON hosted_sessions (created_at);

CREATE TABLE hosted_results (
    code_hash    text        PRIMARY KEY,
    link_id      text        NOT NULL,
    tenant_id    text        NOT NULL,
    user_id      text        NOT NULL,
    purpose      text        NOT NULL,
    completed    boolean     NOT NULL,
    method       text,
    created_at   timestamptz NOT NULL,
    redeemed_at  timestamptz
);

CREATE INDEX hosted_results_created ON hosted_results (created_at);
