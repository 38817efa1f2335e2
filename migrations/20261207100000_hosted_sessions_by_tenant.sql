-- Hosted pages (issue 19): counting a tenant's unopened links, which are capped.
CREATE INDEX hosted_sessions_tenant_created ON hosted_sessions (tenant_id, created_at)
    WHERE opened_at IS NULL;
