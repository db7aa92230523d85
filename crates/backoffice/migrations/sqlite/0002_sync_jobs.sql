-- A sync job: one request by one user (or by a register itself), one target per register.
CREATE TABLE sync_jobs (
    id                 BLOB PRIMARY KEY NOT NULL,
    company_id         BLOB NOT NULL REFERENCES companies(id),
    site_id            BLOB NOT NULL REFERENCES sites(id),
    kind               TEXT NOT NULL,          -- register | site_online
    source             TEXT NOT NULL,          -- back_office | register
    requested_by_user  BLOB REFERENCES users(id),
    requested_by_name  TEXT,
    retry_when_free    INTEGER NOT NULL,
    created_at         TEXT NOT NULL,
    finished_at        TEXT
);
CREATE INDEX sync_jobs_site ON sync_jobs(site_id, created_at);
CREATE INDEX sync_jobs_open ON sync_jobs(company_id) WHERE finished_at IS NULL;

-- Each target follows DESIGN section 4's state machine to exactly one terminal state. Every
-- transition is a compare-and-set on `state`, so two deciders (the register's answer, a deadline)
-- can never both win. A target that is not terminal always has a deadline.
CREATE TABLE sync_targets (
    id            BLOB PRIMARY KEY NOT NULL,
    job_id        BLOB NOT NULL REFERENCES sync_jobs(id),
    register_id   BLOB NOT NULL REFERENCES registers(id),
    state         TEXT NOT NULL,
    revision      INTEGER,
    reason        TEXT,
    deadline_at   INTEGER,        -- unix milliseconds
    wait_expires_at TEXT,
    updated_at    TEXT NOT NULL
);
CREATE INDEX sync_targets_job ON sync_targets(job_id, state);
CREATE INDEX sync_targets_open ON sync_targets(register_id, state)
    WHERE state IN ('queued', 'delivered', 'waiting');
CREATE INDEX sync_targets_deadline ON sync_targets(deadline_at)
    WHERE state IN ('queued', 'delivered', 'waiting');
