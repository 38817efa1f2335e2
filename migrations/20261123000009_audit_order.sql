-- The audit log reads one tenant's events in commit-safe order (transaction, then position),
-- a page at a time from a cursor: this index serves it in order, without sorting the tenant's
-- history. It replaces the (tenant_id, global_position) index, which nothing reads any more
-- (insertion order is not a safe order to page in; see DESIGN.md section 2), so every insert
-- still maintains the same number of indexes.
DROP INDEX IF EXISTS events_by_tenant;
CREATE INDEX events_by_tenant_commit_order ON events (tenant_id, tx_id, global_position);
