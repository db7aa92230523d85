-- When each register went online and offline, for its own page; kept 30 days.
CREATE TABLE register_presence (
    register_id  BLOB NOT NULL REFERENCES registers(id),
    online       BOOLEAN NOT NULL,
    at           TEXT NOT NULL
);
CREATE INDEX register_presence_by_register ON register_presence(register_id, at);
