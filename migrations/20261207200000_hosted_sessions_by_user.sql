-- Hosted pages (issue 19): a new link ends the same user's unopened links.
CREATE INDEX hosted_sessions_user_unopened ON hosted_sessions (tenant_id, user_id)
    WHERE opened_at IS NULL;
