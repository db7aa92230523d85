-- The sync engine keeps every open target in memory (it is their only writer), so lookups by
-- register and by deadline no longer need these indexes, and every state change no longer pays
-- for updating them.
DROP INDEX sync_targets_open;
DROP INDEX sync_targets_deadline;
