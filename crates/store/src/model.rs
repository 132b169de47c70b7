//! What goes into and comes out of the store's units of work. Inputs hold parsed values
//! (`Sku`, `Code`, `Quantity`); outputs are plain serializable views.

use serde::Serialize;
use serde_json::Value as Json;
use stockhub_core::{ChannelRules, Code, EntryKind, LineState, OrderStatus, Quantity, Sku};

/// Who asked, and under which correlation and idempotency key; stamped on every ledger entry.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `api:<token>`, `channel:<code>`, `system:<job>` or `cli:<user>`.
    pub source: String,
    /// A request id, import batch or job run that ties entries together.
    pub correlation_id: String,
    pub idempotency_key: Option<String>,
}

impl Ctx {
    pub fn system(job: &str, correlation_id: impl Into<String>) -> Self {
        Self {
            source: format!("system:{job}"),
            correlation_id: correlation_id.into(),
            idempotency_key: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProductInput {
    pub id: String,
    pub title: String,
    pub vendor: Option<String>,
    pub option_names: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Product {
    pub id: String,
    pub title: String,
    pub vendor: Option<String>,
    pub option_names: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct VariantInput {
    pub sku: Sku,
    pub product_id: Option<String>,
    pub title: Option<String>,
    pub option_values: Json,
    pub barcode: Option<String>,
    pub buffer: i64,
    /// `Some` makes the variant a kit with this recipe (component, units per kit).
    pub kit: Option<Vec<(Sku, i64)>>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KitComponent {
    pub sku: String,
    pub units: i64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Variant {
    pub sku: String,
    pub product_id: Option<String>,
    pub title: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub option_values: Json,
    pub barcode: Option<String>,
    pub buffer: i64,
    pub kit: Option<Vec<KitComponent>>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct VariantFilter {
    pub product_id: Option<String>,
    pub sku_prefix: Option<String>,
    /// Return variants whose SKU sorts after this one (the cursor).
    pub after_sku: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct LocationInput {
    pub code: Code,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Location {
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct ChannelInput {
    pub code: Code,
    pub kind: String,
    pub rules: ChannelRules,
    /// Locations in priority order; `None` means every location, in code order.
    pub feeding_locations: Option<Vec<Code>>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Channel {
    pub code: String,
    pub kind: String,
    pub rules: ChannelRules,
    pub feeding_locations: Option<Vec<String>>,
}

/// One stock movement of `POST /v1/stock/movements`.
#[derive(Debug, Clone, PartialEq)]
pub enum Movement {
    Receive {
        sku: Sku,
        location: Code,
        quantity: Quantity,
    },
    Adjust {
        sku: Sku,
        location: Code,
        delta: i64,
    },
    /// A cycle count: `on_hand` was counted at `counted_at_ms` (now when absent); movements
    /// recorded after that instant are re-applied on top.
    Count {
        sku: Sku,
        location: Code,
        on_hand: i64,
        counted_at_ms: Option<i64>,
    },
    Transfer {
        sku: Sku,
        from: Code,
        to: Code,
        quantity: Quantity,
    },
}

impl Movement {
    /// The SKU the movement changes.
    pub fn sku(&self) -> &Sku {
        match self {
            Self::Receive { sku, .. }
            | Self::Adjust { sku, .. }
            | Self::Count { sku, .. }
            | Self::Transfer { sku, .. } => sku,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MovementItem {
    pub movement: Movement,
    pub note: Option<String>,
    /// The item's own idempotency key and the hash of its canonical JSON.
    pub idempotency: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Level {
    pub sku: String,
    pub location: String,
    pub on_hand: i64,
    pub committed: i64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MovementResult {
    pub index: usize,
    /// `applied`, or `replayed` when its idempotency key was applied before.
    pub status: &'static str,
    pub levels: Vec<Level>,
}

#[derive(Debug, Clone)]
pub struct ReserveInput {
    pub channel: Code,
    pub sku: Sku,
    pub quantity: Quantity,
    pub location: Option<Code>,
    pub expires_in_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AllocationView {
    pub location: String,
    pub committed: i64,
    pub shipped: i64,
    pub restocked: i64,
    /// `[[sku, units per unit], …]`: what one unit of the holder took from the location.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub recipe: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reservation {
    pub id: i64,
    pub channel: String,
    pub sku: String,
    pub quantity: i64,
    /// `active`, `released`, `expired` or `confirmed`.
    pub status: String,
    pub expires_at_ms: i64,
    pub created_at_ms: i64,
    pub order: Option<OrderKey>,
    pub allocations: Vec<AllocationView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderKey {
    pub channel: String,
    pub external_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct SnapshotLine {
    pub line_id: String,
    /// The SKU as the channel sent it; unknown ones go to the unmapped queue.
    pub channel_sku: String,
    /// Units still wanted on this line (0 removes it).
    pub quantity: i64,
    /// What the channel reports of the line's fulfilment, when it reports it.
    pub fulfilment: Option<LineFulfilment>,
}

/// Cumulative fulfilment figures a channel reports for a line. They only ever grow: a snapshot
/// that reports less than stockhub recorded changes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineFulfilment {
    /// Units the channel says were ordered on the line: when fewer are on record (the line was
    /// first seen already reduced or cancelled), the difference is recorded as cancelled, so the
    /// order reads the same whatever order its deliveries came in.
    pub ordered: i64,
    /// Units shipped.
    pub shipped: i64,
    /// Shipped units that came back.
    pub returned: i64,
    /// Returned units put back on the shelf.
    pub restocked: i64,
}

#[derive(Debug, Clone)]
pub struct OrderSnapshot {
    pub channel: Code,
    pub external_id: String,
    pub version: Option<i64>,
    pub status: OrderStatus,
    pub lines: Vec<SnapshotLine>,
    /// The whole payload as JSON text, kept as received.
    pub raw: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineView {
    pub line_id: String,
    pub channel_sku: String,
    /// Our SKU, or `None` while the line waits in the unmapped queue.
    pub sku: Option<String>,
    pub wanted: i64,
    pub ordered: i64,
    #[serde(flatten)]
    pub state: LineState,
    pub allocations: Vec<AllocationView>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderView {
    pub channel: String,
    pub external_id: String,
    pub version: Option<i64>,
    pub status: OrderStatus,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub lines: Vec<LineView>,
}

/// What an order intake did: `created`, `updated`, `unchanged` (same state) or `stale` (an older
/// version than the one applied: nothing changed).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderOutcome {
    pub outcome: &'static str,
    pub order: OrderView,
}

#[derive(Debug, Clone)]
pub struct LineQuantity {
    pub line_id: String,
    pub quantity: Quantity,
    /// Returns: put the units back on the shelf now.
    pub restock: bool,
    /// Returns and restocks: the location to restock at, when not where the units shipped from.
    pub location: Option<Code>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnmappedLine {
    pub id: i64,
    pub channel: String,
    pub external_id: String,
    pub line_id: String,
    pub channel_sku: String,
    pub wanted: i64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEntry {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub sku: String,
    pub location: Option<String>,
    pub delta_on_hand: i64,
    pub delta_committed: i64,
    pub on_hand_after: Option<i64>,
    pub committed_after: Option<i64>,
    pub source: String,
    pub correlation_id: String,
    pub idempotency_key: Option<String>,
    pub channel: Option<String>,
    pub order: Option<OrderKey>,
    pub line_id: Option<String>,
    pub reservation_id: Option<i64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub line_delta: Option<Json>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub detail: Option<Json>,
}

#[derive(Debug, Clone, Default)]
pub struct LedgerQuery {
    pub sku: Option<String>,
    pub order: Option<OrderKey>,
    pub channel: Option<String>,
    pub source: Option<String>,
    pub kind: Option<EntryKind>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Cursor: entries strictly after (or before, newest first) this sequence number.
    pub cursor: Option<i64>,
    pub newest_first: bool,
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelAvailability {
    pub channel: String,
    /// Free units over the channel's feeding locations (whole kits, for a kit).
    pub pool: i64,
    pub available: i64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockView {
    pub sku: String,
    pub is_kit: bool,
    pub buffer: i64,
    pub levels: Vec<Level>,
    pub channels: Vec<ChannelAvailability>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderStory {
    pub order: OrderView,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub snapshot: Json,
    pub reservation: Option<i64>,
    pub ledger: Vec<LedgerEntry>,
}
