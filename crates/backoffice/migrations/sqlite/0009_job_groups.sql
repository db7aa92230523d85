-- "Sync online registers at all my sites": one job per site, made together as a group. Each job
-- names its group and the group's size, so any one of them says what it is part of.
ALTER TABLE sync_jobs ADD COLUMN group_id BLOB;
ALTER TABLE sync_jobs ADD COLUMN group_size INTEGER;
CREATE INDEX sync_jobs_group ON sync_jobs(group_id) WHERE group_id IS NOT NULL;
