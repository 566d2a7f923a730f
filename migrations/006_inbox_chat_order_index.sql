-- Let the dispatcher's claim find "no older open update in this chat" by an index probe,
-- so a claim costs the same with a backlog of 50,000 updates as with 50.

CREATE INDEX telegram_updates_chat_open_idx ON telegram_updates (chat_id, update_id)
    WHERE status IN ('pending', 'processing');
