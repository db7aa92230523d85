-- Every revision of each site's menu (90 days of them), so a register's page can say what it is
-- missing between the revision it holds and the latest. Starts with each site's current menu.
CREATE TABLE catalog_revisions (
    site_id     uuid NOT NULL REFERENCES sites(id),
    revision    bigint NOT NULL,
    content     text NOT NULL,
    updated_at  timestamptz NOT NULL,
    updated_by  text,
    PRIMARY KEY (site_id, revision)
);
INSERT INTO catalog_revisions (site_id, revision, content, updated_at, updated_by)
    SELECT site_id, revision, content, updated_at, updated_by FROM catalogs;
