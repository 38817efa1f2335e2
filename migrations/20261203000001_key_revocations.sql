-- Revoked API keys, written by `revokeApiKey` as soon as its event commits, beside the
-- `api_keys` read model that the event processor keeps. Authentication reads both, so a
-- revocation takes effect at once on every instance (the trigger below announces it), even
-- while the processor is stalled or failing. The event stays the source of truth; the
-- processor's own `revoked_at` arrives later with the same value.
CREATE TABLE key_revocations (
    tenant_id  text        NOT NULL,
    key_id     text        NOT NULL,
    revoked_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key_id)
);

CREATE TRIGGER key_revocations_changed AFTER INSERT OR UPDATE OR DELETE ON key_revocations
    FOR EACH ROW EXECUTE FUNCTION directory_changed();
