-- Scheduled syncs (as migrations/sqlite/0008): a time zone per site, and schedules in it, the
-- next run as unix milliseconds so a node claims a run by a compare-and-set on it.
ALTER TABLE sites ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';

CREATE TABLE site_schedules (
    id           uuid PRIMARY KEY,
    company_id   uuid NOT NULL REFERENCES companies(id),
    site_id      uuid NOT NULL REFERENCES sites(id),
    days         smallint NOT NULL,
    minute       smallint NOT NULL,
    next_run_ms  bigint NOT NULL,
    last_run_ms  bigint,
    created_by   text,
    created_at   timestamptz NOT NULL
);
CREATE INDEX site_schedules_site ON site_schedules(site_id);
CREATE INDEX site_schedules_next ON site_schedules(next_run_ms);
