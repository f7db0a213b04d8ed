-- presenced schema, version 14: the MQTT protocol level of a connection and
-- the MQTT 5 reason code of its close.
--
-- A connect event carries the client's protocol level (3 for 3.1, 4 for
-- 3.1.1, 5 for 5.0); a disconnect or tcpclean of an MQTT 5 connection the
-- reason code of the DISCONNECT packet the client or the broker sent
-- (0x00 normal, 0x04 with will, 0x8E session taken over, …), beside
-- presenced's own close reason. channels keeps the connect's level and the
-- close's code (the tcpclean's, else the disconnect's), so /channels shows
-- them without reading the history; a takeover close held back
-- (takeovers_pending) keeps its code too. Old rows read NULL (not
-- recorded). Columns without defaults: instant, nothing rewritten.
ALTER TABLE events
    ADD COLUMN protocol_level smallint,
    ADD COLUMN reason_code    smallint;
ALTER TABLE channels
    ADD COLUMN protocol_level smallint,
    ADD COLUMN reason_code    smallint;
ALTER TABLE takeovers_pending
    ADD COLUMN reason_code    smallint;
