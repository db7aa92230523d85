-- Back Office as several nodes (docs/cluster.md). Each running node has a row, renewed by its
-- heartbeat; a node whose heartbeat is older than the grace is dead.
CREATE TABLE nodes (
    id            uuid PRIMARY KEY,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL
);

-- Which node holds each register: the one its connection is on (or was last on). That node alone
-- writes the register's open sync targets; every write checks this row, so a node that lost the
-- register (it reconnected elsewhere, or the node was taken for dead) cannot write them any more.
-- `epoch` goes up on every claim, so the node that held it can tell it was replaced.
CREATE TABLE register_sessions (
    register_id  uuid PRIMARY KEY REFERENCES registers(id),
    node_id      uuid NOT NULL,
    epoch        bigint NOT NULL,
    online       boolean NOT NULL,
    in_sale      boolean NOT NULL,
    changed_at   timestamptz NOT NULL
);
CREATE INDEX register_sessions_node ON register_sessions(node_id);
