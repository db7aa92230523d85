-- When each register went online and offline, for its own page; kept 30 days.
CREATE TABLE register_presence (
    register_id  uuid NOT NULL REFERENCES registers(id),
    online       boolean NOT NULL,
    at           timestamptz NOT NULL
);
CREATE INDEX register_presence_by_register ON register_presence(register_id, at);
