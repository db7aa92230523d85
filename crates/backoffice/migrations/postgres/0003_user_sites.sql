-- Access per site: the Sites permission limited to some sites of the company. A user whose
-- all_sites is false sees only the sites listed for them here; everything else answers 404, as
-- another company's ids do.
ALTER TABLE users ADD COLUMN all_sites boolean NOT NULL DEFAULT true;

CREATE TABLE user_sites (
    user_id  uuid NOT NULL REFERENCES users(id),
    site_id  uuid NOT NULL REFERENCES sites(id),
    PRIMARY KEY (user_id, site_id)
);
