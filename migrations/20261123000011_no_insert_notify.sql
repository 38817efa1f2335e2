-- No NOTIFY from event inserts. PostgreSQL serialises the commits of all transactions that
-- sent a notification (a database-wide lock held until after the commit record is flushed),
-- so a NOTIFY per command turned every command commit into a queue and defeated group commit.
-- The instance that commits wakes its own event processor instead; other instances poll.
DROP TRIGGER IF EXISTS events_notify ON events;
DROP FUNCTION IF EXISTS events_notify();
