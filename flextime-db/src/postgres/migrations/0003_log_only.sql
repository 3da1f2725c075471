-- flextime-db 0003: the change log is the only record table. A record's
-- current state is its latest entry (highest version); a unique index on
-- (collection, id, version) finds it and makes a second writer of the same
-- version fail. ft_records goes, in this migration's transaction.
--
-- Not flagged destructive: nothing still readable through the Adapter is
-- lost. Each ft_records row is a copy of its current log entry (same seq,
-- version and timestamps; checked below before the table is dropped). The
-- entries deleted here are those of records purged by purge_tombstones (no
-- ft_records row) and of an id's earlier life before such a purge: none of
-- them is a record's current entry, so prune_changes would already delete
-- them, and purge_tombstones may only be called below every feed reader's
-- checkpoint, so no reader is still to see them. (On this layout,
-- purge_tombstones deletes a purged record's entries itself.)

-- Entries of purged records.
DELETE FROM ft_changes c
WHERE NOT EXISTS (
    SELECT 1 FROM ft_records r WHERE r.collection = c.collection AND r.id = c.id);

-- Entries of an earlier life: an entry followed (in seq) by an entry of the
-- same id with a version not above its own, which only a purge and
-- re-create makes.
DELETE FROM ft_changes c
USING (
    SELECT collection, seq FROM (
        SELECT collection, seq, version,
            min(version) OVER (PARTITION BY collection, id ORDER BY seq DESC
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS later_min
        FROM ft_changes) w
    WHERE w.later_min <= w.version) old
WHERE c.collection = old.collection AND c.seq = old.seq;

DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM ft_records r
        WHERE NOT EXISTS (
            SELECT 1 FROM ft_changes c
            WHERE c.collection = r.collection AND c.seq = r.seq AND c.id = r.id
              AND c.version = r.version AND c.updated_at_us = r.updated_at_us
              AND c.deleted_at_us IS NOT DISTINCT FROM r.deleted_at_us)
    ) THEN
        RAISE EXCEPTION 'flextime-db migration 3: a record''s current entry is missing from ft_changes';
    END IF;
END
$$;

CREATE UNIQUE INDEX IF NOT EXISTS ft_changes_id ON ft_changes (collection, id, version);

DROP TABLE IF EXISTS ft_records;
