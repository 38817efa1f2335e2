-- The hourly SMS budget counts a tenant's recent `CodeSent` events; the index that serves it
-- covered every event (tenant, type, time), so every insert paid for it. Only `CodeSent`
-- events are ever looked up this way: index just those.
DROP INDEX IF EXISTS events_by_tenant_type_time;
CREATE INDEX events_code_sent_by_tenant_time ON events (tenant_id, recorded_at)
    WHERE event_type = 'CodeSent';
