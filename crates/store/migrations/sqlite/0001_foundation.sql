-- stockhub foundation schema (SQLite). Never edit once applied; add a new numbered file instead.
-- Times are integer milliseconds since the Unix epoch. JSON documents are stored as TEXT.

-- Products carry organizational metadata only; stock is never tracked on them.
CREATE TABLE products (
    id           TEXT PRIMARY KEY,
    title        TEXT NOT NULL,
    vendor       TEXT,
    option_names TEXT NOT NULL DEFAULT '[]',
    updated_at   INTEGER NOT NULL
);

-- A variant is the unit of tracking, keyed by SKU. `buffer` is held back from every channel.
CREATE TABLE variants (
    sku           TEXT PRIMARY KEY,
    product_id    TEXT,
    title         TEXT,
    option_values TEXT NOT NULL DEFAULT '{}',
    barcode       TEXT,
    buffer        INTEGER NOT NULL DEFAULT 0 CHECK (buffer >= 0),
    is_kit        INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX variants_by_product ON variants (product_id, sku);

-- A kit's recipe: units of each component per kit. Components are plain variants.
CREATE TABLE kit_components (
    kit_sku       TEXT NOT NULL REFERENCES variants (sku),
    component_sku TEXT NOT NULL REFERENCES variants (sku),
    units         INTEGER NOT NULL CHECK (units > 0),
    PRIMARY KEY (kit_sku, component_sku)
);
CREATE INDEX kit_components_by_component ON kit_components (component_sku);

CREATE TABLE locations (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The projection every read uses; rebuilt from the ledger by `stockhub verify`.
-- committed <= on_hand always: units owed beyond what exists are recorded as short on lines.
CREATE TABLE stock_levels (
    sku       TEXT NOT NULL REFERENCES variants (sku),
    location  TEXT NOT NULL REFERENCES locations (code),
    on_hand   INTEGER NOT NULL CHECK (on_hand >= 0),
    committed INTEGER NOT NULL CHECK (committed >= 0 AND committed <= on_hand),
    PRIMARY KEY (sku, location)
);

-- Channels and their rules. `feeding_locations` is a JSON array in priority order, or NULL for
-- every location in code order.
CREATE TABLE channels (
    code              TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    rules             TEXT NOT NULL,
    feeding_locations TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- A channel's own SKU string mapped to ours, made when an unmapped line is resolved.
CREATE TABLE sku_aliases (
    channel     TEXT NOT NULL REFERENCES channels (code),
    channel_sku TEXT NOT NULL,
    sku         TEXT NOT NULL REFERENCES variants (sku),
    PRIMARY KEY (channel, channel_sku)
);

-- Orders are identified permanently by (channel, external_id); `version` orders snapshots.
CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    channel     TEXT NOT NULL REFERENCES channels (code),
    external_id TEXT NOT NULL,
    version     INTEGER,
    status      TEXT NOT NULL,
    snapshot    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (channel, external_id)
);

-- One row per channel line. `sku` is NULL while the line is unmapped (its `channel_sku` is
-- unknown to us); `wanted` is what the latest snapshot asks for, applied once mapped.
CREATE TABLE order_lines (
    id          INTEGER PRIMARY KEY,
    order_id    INTEGER NOT NULL REFERENCES orders (id),
    line_id     TEXT NOT NULL,
    channel_sku TEXT NOT NULL,
    sku         TEXT REFERENCES variants (sku),
    wanted      INTEGER NOT NULL,
    committed   INTEGER NOT NULL DEFAULT 0 CHECK (committed >= 0),
    short       INTEGER NOT NULL DEFAULT 0 CHECK (short >= 0),
    shipped     INTEGER NOT NULL DEFAULT 0 CHECK (shipped >= 0),
    cancelled   INTEGER NOT NULL DEFAULT 0 CHECK (cancelled >= 0),
    returned    INTEGER NOT NULL DEFAULT 0 CHECK (returned >= 0 AND returned <= shipped),
    restocked   INTEGER NOT NULL DEFAULT 0 CHECK (restocked >= 0 AND restocked <= returned),
    UNIQUE (order_id, line_id)
);
CREATE INDEX order_lines_short ON order_lines (sku, id) WHERE short > 0;
CREATE INDEX order_lines_unmapped ON order_lines (id) WHERE sku IS NULL;

-- Reservations: a storefront's "hold N for me or fail". Times use the database clock.
CREATE TABLE reservations (
    id          INTEGER PRIMARY KEY,
    channel     TEXT NOT NULL REFERENCES channels (code),
    sku         TEXT NOT NULL REFERENCES variants (sku),
    quantity    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    order_id    INTEGER REFERENCES orders (id)
);
CREATE INDEX reservations_expiry ON reservations (expires_at) WHERE status = 'active';

-- Where a line's or reservation's units are committed: one row per location and recipe, so that
-- a kit releases exactly the components it took even after its recipe changed.
-- recipe: JSON [[sku, units per unit of the holder], ...]; a plain SKU is [[sku, 1]].
CREATE TABLE allocations (
    id          INTEGER PRIMARY KEY,
    holder_kind TEXT NOT NULL,
    holder_id   TEXT NOT NULL,
    location    TEXT NOT NULL REFERENCES locations (code),
    recipe      TEXT NOT NULL,
    committed   INTEGER NOT NULL CHECK (committed >= 0),
    shipped     INTEGER NOT NULL DEFAULT 0 CHECK (shipped >= 0),
    restocked   INTEGER NOT NULL DEFAULT 0 CHECK (restocked >= 0 AND restocked <= shipped)
);
CREATE INDEX allocations_by_holder ON allocations (holder_kind, holder_id, id);
-- At most one open (nothing shipped) allocation per holder, location and recipe: new units join it.
CREATE UNIQUE INDEX allocations_open ON allocations (holder_kind, holder_id, location, recipe)
    WHERE shipped = 0;

-- The ledger: append-only, one row per stock movement, written in the same transaction as the
-- projections above. `line_delta` holds the change of the order line's state, when there is one.
CREATE TABLE ledger (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    sku             TEXT NOT NULL,
    location        TEXT,
    delta_on_hand   INTEGER NOT NULL,
    delta_committed INTEGER NOT NULL,
    on_hand_after   INTEGER,
    committed_after INTEGER,
    source          TEXT NOT NULL,
    correlation_id  TEXT NOT NULL,
    idempotency_key TEXT,
    channel         TEXT,
    order_id        INTEGER,
    line_id         TEXT,
    reservation_id  INTEGER,
    allocation_id   INTEGER,
    line_delta      TEXT,
    detail          TEXT
);
CREATE INDEX ledger_by_sku ON ledger (sku, seq);
CREATE INDEX ledger_by_order ON ledger (order_id, seq) WHERE order_id IS NOT NULL;
CREATE INDEX ledger_by_channel ON ledger (channel, seq) WHERE channel IS NOT NULL;
CREATE INDEX ledger_by_at ON ledger (at);
CREATE INDEX ledger_by_sku_location_at ON ledger (sku, location, at);

-- API idempotency: the stored answer of each (token, method, route, key) scope.
CREATE TABLE idempotency_keys (
    scope        TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    status_code  INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
