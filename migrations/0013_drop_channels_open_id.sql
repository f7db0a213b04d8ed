-- presenced schema, version 13: one index entry less per open channel.
--
-- channels_open_id listed the open channels in channel_id order, for a view
-- built page by page at start-up. The view now loads from one snapshot query
-- (pgstore/feed.go), which the other partial indexes of open channels
-- serve, and nothing reads by it any more; every channel paid an entry in it
-- at its connect and again at each update while open (every update of a
-- channel is non-HOT: last_seq, which the feed reads by, changes).
-- DROP INDEX locks channels for an instant.
DROP INDEX IF EXISTS channels_open_id;
