-- presenced schema, version 5: identifiers compare byte by byte.
--
-- Client ids, channel ids, event types, node ids and epochs are opaque
-- identifiers, but text columns took the database's collation: with a
-- libc locale (en_US.UTF-8, even C.UTF-8 on PostgreSQL 15) every
-- comparison in their indexes and in Apply's sorts went through strcoll,
-- a visible share of the store's CPU under connection churn, and an
-- index on them could silently go out of order when a glibc upgrade
-- changed the locale's collation. With "C" they compare as bytes, the
-- order Go's sort gives them, on every platform and forever.
--
-- Changing only the collation does not rewrite the tables, but PostgreSQL
-- rebuilds the indexes on these columns under an exclusive lock: on a
-- large store, applies and queries wait meanwhile (run it in a quiet hour).
ALTER TABLE events
    ALTER COLUMN channel_id TYPE text COLLATE "C",
    ALTER COLUMN event_type TYPE text COLLATE "C",
    ALTER COLUMN client_id  TYPE text COLLATE "C",
    ALTER COLUMN node       TYPE text COLLATE "C",
    ALTER COLUMN epoch      TYPE text COLLATE "C";
ALTER TABLE channels
    ALTER COLUMN channel_id TYPE text COLLATE "C",
    ALTER COLUMN client_id  TYPE text COLLATE "C",
    ALTER COLUMN node       TYPE text COLLATE "C",
    ALTER COLUMN epoch      TYPE text COLLATE "C";
ALTER TABLE nodes
    ALTER COLUMN node  TYPE text COLLATE "C",
    ALTER COLUMN epoch TYPE text COLLATE "C";
ALTER TABLE node_epochs
    ALTER COLUMN node  TYPE text COLLATE "C",
    ALTER COLUMN epoch TYPE text COLLATE "C";
