-- flextime-db 0001: records with a per-collection change counter, key-value entries.
CREATE TABLE IF NOT EXISTS ft_collections (
    name TEXT NOT NULL PRIMARY KEY,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS ft_records (
    collection    TEXT NOT NULL,
    id            TEXT NOT NULL,
    version       INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    data          TEXT,
    updated_at_us INTEGER NOT NULL,
    deleted_at_us INTEGER,
    PRIMARY KEY (collection, id)
) WITHOUT ROWID;

CREATE UNIQUE INDEX IF NOT EXISTS ft_records_feed ON ft_records (collection, seq);

CREATE TABLE IF NOT EXISTS ft_kv (
    k             TEXT NOT NULL PRIMARY KEY,
    value         BLOB NOT NULL,
    version       INTEGER NOT NULL,
    expires_at_us INTEGER
) WITHOUT ROWID;
