-- Per-tenant data keys. TOTP secrets, phone numbers and email addresses in events are sealed
-- (AES-256-GCM) under their tenant's data key; the key itself is stored here wrapped
-- (AES-256-GCM) under the master key (TWOFOLD_MASTER_KEY), with the tenant id as associated
-- data, so a wrapped key copied to another tenant's row does not open.
--
-- This is deliberately NOT an event: events are immutable, keys are not. Deleting a tenant's row
-- crypto-shreds every secret and piece of PII sealed for that tenant while the events, and the
-- audit trail they form, stay untouched.
--
-- wrapped_key: version byte 0x01 || 12-byte nonce || ciphertext and tag of the 32-byte key.
CREATE TABLE tenant_data_keys (
    tenant_id   text        PRIMARY KEY,
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
