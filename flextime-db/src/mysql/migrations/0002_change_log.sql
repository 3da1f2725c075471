-- flextime-db 0002: a change log with one entry per write (upsert or delete),
-- the single home of record data. ft_records keeps each record's current
-- version and the seq of its current entry. Existing data moves into the
-- log first (one entry per record, at its current seq).
CREATE TABLE IF NOT EXISTS ft_changes (
    collection    VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    seq           BIGINT NOT NULL,
    id            VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    version       BIGINT NOT NULL,
    data          LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    updated_at_us BIGINT NOT NULL,
    deleted_at_us BIGINT NULL,
    PRIMARY KEY (collection, seq)
) ENGINE = InnoDB;

INSERT IGNORE INTO ft_changes (collection, seq, id, version, data, updated_at_us, deleted_at_us)
SELECT collection, seq, id, version, data, updated_at_us, deleted_at_us FROM ft_records;

UPDATE ft_records SET data = NULL WHERE data IS NOT NULL;

ALTER TABLE ft_records DROP INDEX ft_records_feed;
