-- Data keys of the second seal format (decision 160): one per tenant (user_id = '') and one
-- per user, each named by the id every seal made under it carries. Deleting a user's row is
-- the erasure (crypto-shredding): the events keep their seals, which no longer open.
-- `tenant_data_keys` stays for opening what was sealed before, until `twofold keys reseal`.
CREATE TABLE data_keys (
    key_id uuid PRIMARY KEY,
    tenant_id text NOT NULL,
    user_id text NOT NULL,
    wrapped_key bytea NOT NULL,
    master_key_id text NOT NULL CHECK (master_key_id ~ '^[0-9a-f]{16}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One current key per owner: concurrent first seals agree on one.
CREATE UNIQUE INDEX data_keys_owner ON data_keys (tenant_id, user_id);
