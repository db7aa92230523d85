-- Companies own sites and users; every query a user makes is scoped to their company.
CREATE TABLE companies (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE sites (
    id          BLOB PRIMARY KEY NOT NULL,
    company_id  BLOB NOT NULL REFERENCES companies(id),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (company_id, name)
);

-- Emails are unique across companies: a user signs in with an email alone.
CREATE TABLE users (
    id             BLOB PRIMARY KEY NOT NULL,
    company_id     BLOB NOT NULL REFERENCES companies(id),
    email          TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    -- Comma-separated permission words (`admin`, `sites`).
    permissions    TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL
);

-- A register signs in with its own device credential; only its SHA-256 is kept.
CREATE TABLE registers (
    id                  BLOB PRIMARY KEY NOT NULL,
    site_id             BLOB NOT NULL REFERENCES sites(id),
    name                TEXT NOT NULL,
    credential_hash     BLOB NOT NULL UNIQUE,
    applied_revision    INTEGER NOT NULL DEFAULT 0,
    last_seen_at        TEXT,
    last_synced_at      TEXT,
    last_synced_source  TEXT,
    last_synced_by      TEXT,
    created_at          TEXT NOT NULL,
    UNIQUE (site_id, name)
);

-- One current catalog per site; the revision only ever goes up.
CREATE TABLE catalogs (
    site_id     BLOB PRIMARY KEY NOT NULL REFERENCES sites(id),
    revision    INTEGER NOT NULL,
    content     TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT
);

-- A sign-in is a family: the access and refresh tokens issued from one login and its refreshes.
-- Tokens are random; only their SHA-256 is stored.
CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    family_id   BLOB NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users(id),
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    revoked_at  TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);

CREATE TABLE access_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    family_id   BLOB NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users(id),
    expires_at  TEXT NOT NULL
);
CREATE INDEX access_tokens_family ON access_tokens(family_id);
CREATE INDEX access_tokens_user ON access_tokens(user_id);
