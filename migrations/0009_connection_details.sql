-- presenced schema, version 9: connection details kept where they are read.
--
-- The connect event already carries the client's user name, keepalive and
-- clean-session flag; over a TLS listener also the TLS
-- version and, with mutual TLS, the client certificate's subject. The
-- events get columns for the TLS details, so history shows them; the
-- channels row keeps all five from its connect event, so that
-- GET /clients/{id}/channels shows how each connection was made without
-- reading the history. Old rows read NULL (not recorded).
ALTER TABLE events
    ADD COLUMN tls_version        text NOT NULL DEFAULT '',
    ADD COLUMN tls_client_subject text NOT NULL DEFAULT '';
ALTER TABLE channels
    ADD COLUMN username           text,
    ADD COLUMN keepalive          integer,
    ADD COLUMN clean_session      boolean,
    ADD COLUMN tls_version        text,
    ADD COLUMN tls_client_subject text;
