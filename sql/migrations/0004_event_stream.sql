-- Readers that resume (SubscribeToSupportEvents, StreamChat's follower) walk the log in
-- (txid, position) order below the snapshot's xmin: every transaction that may still commit an
-- event has a txid at or above xmin, so nothing can appear behind such a cursor. (Position
-- order alone is not enough: a transaction that took its txid early may insert its event after
-- a younger one and commit first.) This index serves that walk.
CREATE INDEX support_events_txid_idx ON support_events (txid, position);
