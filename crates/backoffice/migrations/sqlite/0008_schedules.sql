-- Scheduled syncs: each site has a time zone, and schedules ("Mondays at 06:00") in it. The next
-- run is kept as unix milliseconds, worked out by Back Office in the site's time zone, so "what
-- is due" is one comparison and a run is claimed by a compare-and-set on it.
ALTER TABLE sites ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';

CREATE TABLE site_schedules (
    id           BLOB PRIMARY KEY NOT NULL,
    company_id   BLOB NOT NULL REFERENCES companies(id),
    site_id      BLOB NOT NULL REFERENCES sites(id),
    days         INTEGER NOT NULL,   -- bit 0 Monday … bit 6 Sunday
    minute       INTEGER NOT NULL,   -- minutes after local midnight
    next_run_ms  INTEGER NOT NULL,
    last_run_ms  INTEGER,
    created_by   TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX site_schedules_site ON site_schedules(site_id);
CREATE INDEX site_schedules_next ON site_schedules(next_run_ms);
