-- flextime-db 0002: a change log with one entry per write (upsert or delete),
-- the single home of record data. ft_records keeps each record's current
-- version and the seq of its current entry. Existing data moves into the
-- log first (one entry per record, at its current seq).
CREATE TABLE IF NOT EXISTS ft_changes (
    collection    TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    id            TEXT NOT NULL,
    version       INTEGER NOT NULL,
    data          TEXT,
    updated_at_us INTEGER NOT NULL,
    deleted_at_us INTEGER,
    PRIMARY KEY (collection, seq)
) WITHOUT ROWID;

INSERT OR IGNORE INTO ft_changes (collection, seq, id, version, data, updated_at_us, deleted_at_us)
SELECT collection, seq, id, version, data, updated_at_us, deleted_at_us FROM ft_records;

UPDATE ft_records SET data = NULL WHERE data IS NOT NULL;

DROP INDEX IF EXISTS ft_records_feed;
