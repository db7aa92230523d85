-- A register that applies a sync after its target already ended (its deadline passed first) is
-- credited with it once: this records that it was, so a repeated answer credits nothing.
ALTER TABLE sync_targets ADD COLUMN late_applied_at TEXT;
