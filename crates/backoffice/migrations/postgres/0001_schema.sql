-- Back Office on PostgreSQL: the same tables as on SQLite (migrations/sqlite, 0001 to 0004), in
-- PostgreSQL's own types. docs/architecture.md says what each holds.

-- Companies own sites and users; every query a user makes is scoped to their company.
CREATE TABLE companies (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL
);

CREATE TABLE sites (
    id          uuid PRIMARY KEY,
    company_id  uuid NOT NULL REFERENCES companies(id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL,
    UNIQUE (company_id, name)
);

-- Emails are unique across companies: a user signs in with an email alone.
CREATE TABLE users (
    id             uuid PRIMARY KEY,
    company_id     uuid NOT NULL REFERENCES companies(id),
    email          text NOT NULL UNIQUE,
    display_name   text NOT NULL,
    password_hash  text NOT NULL,
    -- Comma-separated permission words (`admin`, `sites`).
    permissions    text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL
);

-- A register signs in with its own device credential; only its SHA-256 is kept.
CREATE TABLE registers (
    id                  uuid PRIMARY KEY,
    site_id             uuid NOT NULL REFERENCES sites(id),
    name                text NOT NULL,
    credential_hash     bytea NOT NULL UNIQUE,
    applied_revision    bigint NOT NULL DEFAULT 0,
    last_seen_at        timestamptz,
    last_synced_at      timestamptz,
    last_synced_source  text,
    last_synced_by      text,
    created_at          timestamptz NOT NULL,
    UNIQUE (site_id, name)
);

-- One current catalog per site; the revision only ever goes up.
CREATE TABLE catalogs (
    site_id     uuid PRIMARY KEY REFERENCES sites(id),
    revision    bigint NOT NULL,
    content     text NOT NULL,
    updated_at  timestamptz NOT NULL,
    updated_by  text
);

-- A sign-in is a family: the access and refresh tokens issued from one login and its refreshes.
-- Tokens are random; only their SHA-256 is stored.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users(id),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);

CREATE TABLE access_tokens (
    token_hash  bytea PRIMARY KEY,
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users(id),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX access_tokens_family ON access_tokens(family_id);
CREATE INDEX access_tokens_user ON access_tokens(user_id);

-- A sync job: one request by one user (or by a register itself), one target per register.
CREATE TABLE sync_jobs (
    id                 uuid PRIMARY KEY,
    company_id         uuid NOT NULL REFERENCES companies(id),
    site_id            uuid NOT NULL REFERENCES sites(id),
    kind               text NOT NULL,          -- register | site_online
    source             text NOT NULL,          -- back_office | register
    requested_by_user  uuid REFERENCES users(id),
    requested_by_name  text,
    retry_when_free    boolean NOT NULL,
    created_at         timestamptz NOT NULL,
    finished_at        timestamptz
);
CREATE INDEX sync_jobs_site ON sync_jobs(site_id, created_at);
CREATE INDEX sync_jobs_open ON sync_jobs(company_id) WHERE finished_at IS NULL;

-- Each target follows the sync state machine (docs/sync.md) to exactly one terminal state. Every
-- transition is a compare-and-set on `state`, so two deciders (the register's answer, a deadline)
-- can never both win. A target that is not terminal always has a deadline.
CREATE TABLE sync_targets (
    id               uuid PRIMARY KEY,
    job_id           uuid NOT NULL REFERENCES sync_jobs(id),
    register_id      uuid NOT NULL REFERENCES registers(id),
    state            text NOT NULL,
    revision         bigint,
    reason           text,
    deadline_at      bigint,        -- unix milliseconds
    wait_expires_at  timestamptz,
    updated_at       timestamptz NOT NULL,
    -- A register that applies a sync after its target already ended is credited with it once.
    late_applied_at  timestamptz
);
CREATE INDEX sync_targets_job ON sync_targets(job_id, state);
-- Open targets are few beside the ended ones; a start loads them by this index.
CREATE INDEX sync_targets_open ON sync_targets(state) WHERE state IN ('queued', 'delivered', 'waiting');
