-- Offline registers can be queued until they reconnect: `awaiting_reconnect` is an open state
-- too, so the partial index of open targets covers it.
DROP INDEX sync_targets_open;
CREATE INDEX sync_targets_open ON sync_targets(state)
    WHERE state IN ('queued', 'delivered', 'waiting', 'awaiting_reconnect');
