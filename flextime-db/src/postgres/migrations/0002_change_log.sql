-- flextime-db 0002: a change log with one entry per write (upsert or delete),
-- the single home of record data. ft_records keeps each record's current
-- version and the seq of its current entry. Existing data moves into the
-- log first (one entry per record, at its current seq), in this migration's
-- transaction.
CREATE TABLE IF NOT EXISTS ft_changes (
    collection    TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    id            TEXT NOT NULL,
    version       BIGINT NOT NULL,
    data          JSONB,
    updated_at_us BIGINT NOT NULL,
    deleted_at_us BIGINT,
    PRIMARY KEY (collection, seq)
);

INSERT INTO ft_changes (collection, seq, id, version, data, updated_at_us, deleted_at_us)
SELECT collection, seq, id, version, data, updated_at_us, deleted_at_us FROM ft_records
ON CONFLICT DO NOTHING;

UPDATE ft_records SET data = NULL WHERE data IS NOT NULL;

-- The feed reads the log now; the records' seq index only cost writes.
DROP INDEX IF EXISTS ft_records_feed;
