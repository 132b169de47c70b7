//! stockhub's domain core: the values that cross the edge already parsed (`Sku`, `Code`,
//! `Quantity`), the availability formulas of DESIGN §1, the ledger's entry kinds and the
//! order-line arithmetic of DESIGN §3. Nothing here does I/O; every function is deterministic.
#![forbid(unsafe_code)]

pub mod availability;
pub mod ids;
pub mod ledger;
pub mod order;
pub mod quantity;

pub use availability::{ats, kit_units_at, ChannelRules, SHARE_WHOLE_PPM};
pub use ids::{Code, InvalidId, Sku};
pub use ledger::EntryKind;
pub use order::{LineState, LineTarget, OrderStatus};
pub use quantity::{InvalidQuantity, Quantity, QUANTITY_MAX};
