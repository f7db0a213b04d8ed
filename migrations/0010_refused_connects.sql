-- presenced schema, version 10: refused connects, so that an operator can
-- tell why a client never got in (bad credentials, identifier rejected,
-- not authorized, server unavailable, unacceptable protocol).
--
-- The broker reports each refusal with the client id, return code, reason,
-- remote address and user name (never the password). presenced keeps at
-- most one per client id per 10 s and the newest 100 per client id, and
-- removes them under the same retention as closed channels. The online
-- rule ignores them.
CREATE TABLE refused_connects (
    id          bigserial   PRIMARY KEY,
    client_id   text COLLATE "C" NOT NULL,
    time        bigint      NOT NULL,
    return_code integer     NOT NULL,
    reason      text        NOT NULL,
    client_ip   text        NOT NULL DEFAULT '',
    username    text        NOT NULL DEFAULT '',
    node        text COLLATE "C" NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refused_connects_client ON refused_connects (client_id, id);
CREATE INDEX refused_connects_recorded_at ON refused_connects (recorded_at);
