//! The span of every quantity write a store processed: the items it named, from when the store
//! took it up to when it took effect (or was refused), so that tests can check when writes were
//! made and that no two naming one item were ever in progress at once (issue 4: no push is sent
//! twice concurrently for one listing).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// One write call: an `inventorySetQuantities` request on Shopify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteSpan {
    /// The items the call named (Shopify inventory item ids), whether or not it changed them.
    pub item_ids: Vec<u64>,
    /// Microseconds on the simulators' monotonic clock ([`crate::clock::monotonic_us`]): when
    /// the store took the call up (before any processing delay), and when it was done with it.
    pub began_us: u64,
    pub ended_us: u64,
}

/// Every write span of a store, oldest first. Bounded: past `capacity` the oldest are dropped.
#[derive(Debug)]
pub(crate) struct WriteLog {
    spans: VecDeque<WriteSpan>,
    capacity: usize,
}

impl WriteLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            spans: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn record(&mut self, span: WriteSpan) {
        if self.spans.len() == self.capacity {
            self.spans.pop_front();
        }
        self.spans.push_back(span);
    }

    pub(crate) fn spans(&self) -> Vec<WriteSpan> {
        self.spans.iter().cloned().collect()
    }
}
