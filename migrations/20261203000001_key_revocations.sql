-- Revoked API keys, written in the same transaction as the `ApiKeyRevoked` event (a trigger on
-- `events`), beside the `api_keys` read model that the event processor keeps. Authentication
-- reads both, so a revocation takes effect the moment it commits, on every instance (the
-- second trigger announces it to their caches), even while the processor is stalled or
-- failing, and no crash or timeout can fall between the event and the revocation. The event
-- stays the source of truth; the processor's own `revoked_at` arrives later, the same value.
CREATE TABLE key_revocations (
    tenant_id  text        NOT NULL,
    key_id     text        NOT NULL,
    revoked_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key_id)
);

CREATE FUNCTION record_key_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO key_revocations (tenant_id, key_id, revoked_at)
    VALUES (NEW.tenant_id,
            NEW.payload -> 'ApiKeyRevoked' ->> 'key_id',
            (NEW.payload -> 'ApiKeyRevoked' ->> 'revoked_at')::timestamptz)
    ON CONFLICT (tenant_id, key_id) DO NOTHING;
    RETURN NULL;
END $$;

-- The WHEN clause is checked without calling the function, so other inserts pay next to
-- nothing for it.
CREATE TRIGGER events_record_key_revocation AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.event_type = 'ApiKeyRevoked')
    EXECUTE FUNCTION record_key_revocation();

CREATE TRIGGER key_revocations_changed AFTER INSERT OR UPDATE OR DELETE ON key_revocations
    FOR EACH ROW EXECUTE FUNCTION directory_changed();

-- Revocations recorded before this migration.
INSERT INTO key_revocations (tenant_id, key_id, revoked_at)
SELECT tenant_id,
       payload -> 'ApiKeyRevoked' ->> 'key_id',
       (payload -> 'ApiKeyRevoked' ->> 'revoked_at')::timestamptz
FROM events
WHERE event_type = 'ApiKeyRevoked'
ON CONFLICT (tenant_id, key_id) DO NOTHING;
