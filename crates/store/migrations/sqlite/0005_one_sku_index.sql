-- Every ledger entry updated three indexes keyed by SKU, each at a random place of its tree:
-- most of an order line's write cost and most of the pages a commit writes. The cycle count's
-- look-up of movements recorded after `counted_at` (sku, location, at) now reads the SKU's
-- entries in `ledger_by_sku`, which carries the columns it needs, so the table is not read and
-- one of the three indexes goes. Rebuilding the index takes a while on a long ledger (about a
-- second per million entries), once, at start-up.
-- Never edit once applied.
DROP INDEX ledger_by_sku_location_at;
DROP INDEX ledger_by_sku;
CREATE INDEX ledger_by_sku ON ledger (sku, seq, location, at, kind, delta_on_hand);
