-- presenced schema, version 11: webhook cursors.
--
-- Each webhook (--webhook-url name=url) follows the channel change feed
-- from its own durable cursor: the last_seq up to which its changes were
-- delivered (2xx) or found to change no client's presence. The backlog of
-- a hook that is down is the feed itself, not a queue: nothing is copied
-- per hook, and a restart resumes from here.
--
-- The lease lets several serve/api processes configured with the same hook
-- deliver it exactly one at a time: a process delivers only while it holds
-- an unexpired lease (the store's clock), renewed with every cursor write.
CREATE TABLE webhook_cursors (
    hook        text COLLATE "C" PRIMARY KEY,
    cursor_seq  bigint      NOT NULL,
    lease_owner text        NOT NULL DEFAULT '',
    lease_until timestamptz NOT NULL DEFAULT '-infinity',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
