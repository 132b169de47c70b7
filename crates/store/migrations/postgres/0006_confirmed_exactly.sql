-- Whether a listing's last confirmation leaves it showing no more than stockhub expects: set by a
-- push whose compare-and-set quantity was exactly what the channel showed as far as stockhub
-- knew (`Target::expected_exact`). A push compared against less exact knowledge (units the
-- channel may have put back itself, a read, no comparison at all) can pass its comparison after
-- the channel sold units and put others back, and overwrite that sale; orders booked after it
-- are then not known to have come after the write. Existing listings start as not exact.
-- Never edit once applied.
ALTER TABLE listings ADD COLUMN confirmed_exactly BIGINT NOT NULL DEFAULT 0;
