-- Channel connectors: connection settings and secrets, listings, pending pushes, the inbound
-- event archive, refunds kept per order, and discovery reports. Never edit once applied.

-- Where a connected channel is and how its locations map to ours (JSON, shown by the API), and
-- its credentials (JSON, never returned by the API nor logged).
ALTER TABLE channels ADD COLUMN connection TEXT;
ALTER TABLE channels ADD COLUMN secrets TEXT;

-- A listing: something on a channel that shows a quantity of one of our SKUs. Keyed by the
-- channel's own id, so several listings may sell one SKU. `feeding_locations` (JSON) narrows the
-- channel's feeding locations for a listing stocked at one channel location.
CREATE TABLE listings (
    id                INTEGER PRIMARY KEY,
    channel           TEXT NOT NULL REFERENCES channels (code),
    listing_key       TEXT NOT NULL,
    sku               TEXT REFERENCES variants (sku),
    channel_sku       TEXT,
    channel_location  TEXT,
    feeding_locations TEXT,
    -- The channel's variant id, to map order lines that carry no SKU.
    variant_ref       TEXT,
    ids               TEXT NOT NULL,
    last_pushed       INTEGER,
    last_pushed_at    INTEGER,
    -- The quantity the channel last confirmed (a push it applied, or a read), and when.
    last_confirmed    INTEGER,
    confirmed_at      INTEGER,
    -- A lower quantity the channel showed than it confirmed (a failed compare-and-set or a read):
    -- the decrease not explained by orders ingested since `confirmed_at` is held back (`u`).
    observed          INTEGER,
    observed_at       INTEGER,
    last_latency_ms   INTEGER,
    pushes            INTEGER NOT NULL DEFAULT 0,
    discovered_at     INTEGER NOT NULL,
    UNIQUE (channel, listing_key)
);
CREATE INDEX listings_by_sku ON listings (sku, channel);
-- The push engine's hold (`u`) counts a channel's orders of one SKU since a time.
CREATE INDEX ledger_by_channel_sku_at ON ledger (channel, sku, at) WHERE channel IS NOT NULL;
CREATE INDEX listings_by_variant ON listings (channel, variant_ref);

-- "(channel, SKU) must be brought to the current sellable quantity". Marked in the same
-- transaction as the stock change; `generation` counts marks, so a push finishing for an older
-- generation leaves the newer change pending. `marked_at` is the oldest change not yet pushed.
CREATE TABLE push_marks (
    channel         TEXT NOT NULL,
    sku             TEXT NOT NULL,
    state           TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    marked_at       INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    first_failed_at INTEGER,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    lease_token     TEXT,
    leased_until    INTEGER,
    PRIMARY KEY (channel, sku)
);
CREATE INDEX push_marks_due ON push_marks (state, next_attempt_at);

-- Every webhook delivery exactly as received, with the signature verdict and what became of it.
-- `dedupe_key` is the delivery's permanent identity; the first valid delivery of an identity
-- holds it, repeats are archived as duplicates.
CREATE TABLE inbound_events (
    id           INTEGER PRIMARY KEY,
    channel      TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    topic        TEXT,
    dedupe_key   TEXT,
    delivery_id  TEXT,
    headers      TEXT NOT NULL,
    body         BLOB NOT NULL,
    verdict      TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT,
    applied_at   INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX inbound_events_identity ON inbound_events (channel, dedupe_key)
    WHERE verdict = 'valid' AND outcome <> 'duplicate';
CREATE INDEX inbound_events_by_time ON inbound_events (channel, received_at);
CREATE INDEX inbound_events_waiting ON inbound_events (outcome, id) WHERE outcome = 'pending';

-- Refunds as channels report them, merged into their order's snapshot by refund id, so that a
-- refund applies once whether it arrives before, inside or after its order.
CREATE TABLE channel_refunds (
    channel     TEXT NOT NULL,
    refund_id   TEXT NOT NULL,
    external_id TEXT NOT NULL,
    lines       TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (channel, refund_id)
);
CREATE INDEX channel_refunds_by_order ON channel_refunds (channel, external_id);

-- What each catalog discovery found: matched listings and what did not match.
CREATE TABLE discovery_reports (
    id      INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    run_at  INTEGER NOT NULL,
    report  TEXT NOT NULL
);

-- A difference between what a channel showed and what stockhub expected it to show, and what
-- was done about it.
CREATE TABLE drifts (
    id          INTEGER PRIMARY KEY,
    channel     TEXT NOT NULL,
    listing_key TEXT NOT NULL,
    sku         TEXT,
    expected    INTEGER,
    found       INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    note        TEXT NOT NULL
);
CREATE INDEX drifts_by_channel ON drifts (channel, id);

-- How far each channel's order backfill has read (the channel's own `updated_at`, in ms).
CREATE TABLE channel_cursors (
    channel      TEXT PRIMARY KEY,
    orders_since INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
