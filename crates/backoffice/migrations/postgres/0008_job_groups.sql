-- "Sync online registers at all my sites" (as migrations/sqlite/0009): each job names its group
-- and the group's size.
ALTER TABLE sync_jobs ADD COLUMN group_id uuid;
ALTER TABLE sync_jobs ADD COLUMN group_size integer;
CREATE INDEX sync_jobs_group ON sync_jobs(group_id) WHERE group_id IS NOT NULL;
