-- `global_position` comes from a sequence, so it is unique by construction; the UNIQUE
-- constraint only added a fifth index that every event insert had to update, and that no
-- query reads: processors, checkpoints and the audit history all order and seek by
-- `(tx_id, global_position)` or `(tenant_id, tx_id, global_position)`, which have indexes of
-- their own. Dropping it saves a few percent of PostgreSQL's time per insert (decision 78).
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_global_position_key;
