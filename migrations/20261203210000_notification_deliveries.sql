-- Security notices share the delivery queue with codes: the `delivery_outbox` projection queues
-- one row per `NotificationQueued` (keyed by the notification id, so a replay never queues it
-- twice), and the worker sends it through the same channel senders. Rows queued before this
-- column existed are codes.
ALTER TABLE deliveries
    ADD COLUMN kind text NOT NULL DEFAULT 'code' CHECK (kind IN ('code', 'notification'));
