-- presenced schema, version 4: events keyed on their natural key alone.
--
-- events had two unique indexes: the primary key on seq and the natural
-- key (channel_id, event_type) that absorbs redelivered events. Nothing
-- looks events up by seq alone (history pages by (client_id, seq), the
-- change feed reads channels.last_seq), so the seq index only cost one more
-- index entry per stored event: about a tenth of the store's writes under
-- connection churn. seq stays, unique by its sequence and ordered as
-- before. The natural key becomes the replica identity, as the primary
-- key was, for logical replication of deletes by retention.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events REPLICA IDENTITY USING INDEX events_channel_event_key;
