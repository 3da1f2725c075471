-- flextime-db 0001: records with a per-collection change counter, key-value entries.
CREATE TABLE IF NOT EXISTS ft_collections (
    name VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    seq  BIGINT NOT NULL
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS ft_records (
    collection    VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    id            VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    version       BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    data          LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    updated_at_us BIGINT NOT NULL,
    deleted_at_us BIGINT NULL,
    PRIMARY KEY (collection, id),
    UNIQUE KEY ft_records_feed (collection, seq)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS ft_kv (
    k             VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    value         LONGBLOB NOT NULL,
    version       BIGINT NOT NULL,
    expires_at_us BIGINT NULL
) ENGINE = InnoDB;
