-- Passkeys and security keys make a user enrolled too: `webauthn_credentials` holds the ids of
-- the user's registered credentials (a set, so replaying an event changes nothing), and
-- `enrolled` is recomputed with it (a generated column's expression cannot be altered in place
-- before PostgreSQL 17, so it is dropped and added again with its index).
ALTER TABLE user_compliance ADD COLUMN webauthn_credentials text[] NOT NULL DEFAULT '{}';
DROP INDEX user_compliance_not_enrolled;
ALTER TABLE user_compliance DROP COLUMN enrolled;
ALTER TABLE user_compliance ADD COLUMN enrolled boolean GENERATED ALWAYS AS
    (totp OR email_verified OR phone_verified OR cardinality(webauthn_credentials) > 0) STORED;
CREATE INDEX user_compliance_not_enrolled
    ON user_compliance (tenant_id, first_seen_at, user_id) WHERE NOT enrolled;
