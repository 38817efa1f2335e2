-- Counting a tenant's recent events of one type (the hourly SMS budget counts `CodeSent`)
-- without reading the tenant's whole history.
CREATE INDEX events_by_tenant_type_time ON events (tenant_id, event_type, recorded_at);
