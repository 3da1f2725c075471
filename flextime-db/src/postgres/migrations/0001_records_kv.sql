-- flextime-db 0001: records with a per-collection change counter, key-value entries.
CREATE TABLE IF NOT EXISTS ft_collections (
    name TEXT PRIMARY KEY,
    seq  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS ft_records (
    collection    TEXT NOT NULL,
    id            TEXT NOT NULL,
    version       BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    data          JSONB,
    updated_at_us BIGINT NOT NULL,
    deleted_at_us BIGINT,
    PRIMARY KEY (collection, id)
);

CREATE UNIQUE INDEX IF NOT EXISTS ft_records_feed ON ft_records (collection, seq);

CREATE TABLE IF NOT EXISTS ft_kv (
    k             TEXT PRIMARY KEY,
    value         BYTEA NOT NULL,
    version       BIGINT NOT NULL,
    expires_at_us BIGINT
);
