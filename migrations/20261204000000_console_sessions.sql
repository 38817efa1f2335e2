-- Console sessions (issue 18): one row per signed-in browser, found by the keyed hash of its
-- cookie's random token. Not events: a session is a credential, not a fact of the tenant's
-- history, and it must be possible to delete it.
CREATE TABLE console_sessions (
    token_hash   text        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    key_id       text        NOT NULL,
    role         text        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);

CREATE INDEX console_sessions_key ON console_sessions (tenant_id, key_id);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen_at);

-- A revoked key's sessions go in the revoking transaction (the reads also check the
-- revocation, so this only keeps the table clean).
CREATE FUNCTION end_console_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM console_sessions WHERE tenant_id = NEW.tenant_id AND key_id = NEW.key_id;
    RETURN NULL;
END $$;

CREATE TRIGGER key_revocations_end_console_sessions AFTER INSERT ON key_revocations
    FOR EACH ROW EXECUTE FUNCTION end_console_sessions();
