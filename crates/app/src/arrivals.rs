//! The webhook deliveries this process is handling, per channel, with the SKUs of their order
//! lines once known, so that a push can leave out the listings a sale is on its way for (see
//! `PushWorker::leave_sales_in_flight`).
//!
//! A delivery is open from the moment intake takes it until its transaction has committed (or
//! it failed): [`Arrivals::open`] registers it and the [`Arrival`] it returns closes it when
//! dropped. A push takes a [`Mark`] before it computes its quantities; at send time
//! [`Arrivals::skus_since`] gives the SKUs of the deliveries open then or closed after the mark:
//! a sale the quantities may not count. The last `CLOSED_KEPT` closed deliveries of each
//! channel are remembered for that. In memory and per process: on a shared PostgreSQL store
//! each process knows its own deliveries only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Closed deliveries remembered per channel (a mark older than these sees only those kept).
const CLOSED_KEPT: usize = 4096;

#[derive(Default)]
struct Deliveries {
    /// The number the next delivery gets.
    next: u64,
    /// Deliveries opened and not closed yet, with the SKUs of their lines once known.
    open: HashMap<u64, Vec<String>>,
    /// Deliveries closed so far.
    closes: u64,
    /// The last closed deliveries: the count of closes before each, and its SKUs.
    closed: VecDeque<(u64, Vec<String>)>,
}

/// The open and recently closed deliveries of every channel.
#[derive(Default)]
pub struct Arrivals {
    channels: Mutex<HashMap<String, Deliveries>>,
}

/// Where a channel's deliveries stood at a moment: those closed after it are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(u64);

/// One delivery being handled; dropping it closes it.
pub struct Arrival {
    arrivals: Arc<Arrivals>,
    channel: String,
    number: u64,
}

impl Arrival {
    /// Notes the SKUs the delivery's order lines sell.
    pub fn touches(&self, skus: impl IntoIterator<Item = String>) {
        if let Some(deliveries) = self.arrivals.lock().get_mut(&self.channel) {
            if let Some(known) = deliveries.open.get_mut(&self.number) {
                known.extend(skus);
            }
        }
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        let mut channels = self.arrivals.lock();
        let Some(deliveries) = channels.get_mut(&self.channel) else {
            return;
        };
        let Some(skus) = deliveries.open.remove(&self.number) else {
            return;
        };
        if !skus.is_empty() {
            if deliveries.closed.len() >= CLOSED_KEPT {
                deliveries.closed.pop_front();
            }
            deliveries.closed.push_back((deliveries.closes, skus));
        }
        deliveries.closes += 1;
    }
}

impl Arrivals {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Deliveries>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a delivery of `channel`, open until the returned guard is dropped.
    pub fn open(self: &Arc<Self>, channel: &str) -> Arrival {
        let mut channels = self.lock();
        let deliveries = channels.entry(channel.to_owned()).or_default();
        let number = deliveries.next;
        deliveries.next += 1;
        deliveries.open.insert(number, Vec::new());
        Arrival {
            arrivals: Arc::clone(self),
            channel: channel.to_owned(),
            number,
        }
    }

    /// Where the deliveries of `channel` stand now.
    pub fn mark(&self, channel: &str) -> Mark {
        Mark(self.lock().get(channel).map_or(0, |d| d.closes))
    }

    /// The SKUs of the deliveries of `channel` open now or closed since `mark`.
    pub fn skus_since(&self, channel: &str, mark: Mark) -> HashSet<String> {
        let channels = self.lock();
        let Some(deliveries) = channels.get(channel) else {
            return HashSet::new();
        };
        let closed_since = deliveries
            .closed
            .iter()
            .rev()
            .take_while(|(closes_before, _)| *closes_before >= mark.0)
            .map(|(_, skus)| skus);
        deliveries
            .open
            .values()
            .chain(closed_since)
            .flatten()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(skus: &[&str]) -> HashSet<String> {
        skus.iter().map(|s| (*s).to_owned()).collect()
    }

    fn skus(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn open_deliveries_and_those_closed_since_a_mark_are_in_flight() {
        let arrivals = Arc::new(Arrivals::default());
        let start = arrivals.mark("shop");
        assert!(arrivals.skus_since("shop", start).is_empty());
        let early = arrivals.open("shop");
        early.touches(skus(&["E"]));
        drop(early);
        let first = arrivals.open("shop");
        let mark = arrivals.mark("shop");
        assert!(arrivals.skus_since("shop", mark).is_empty(), "not read yet");
        first.touches(skus(&["A", "B"]));
        let second = arrivals.open("shop");
        second.touches(skus(&["B", "C"]));
        let other = arrivals.open("woo");
        other.touches(skus(&["D"]));
        assert_eq!(arrivals.skus_since("shop", mark), set(&["A", "B", "C"]));
        assert_eq!(
            arrivals.skus_since("woo", arrivals.mark("woo")),
            set(&["D"])
        );
        drop(first);
        assert_eq!(
            arrivals.skus_since("shop", mark),
            set(&["A", "B", "C"]),
            "closed after the mark: its sale may not be counted"
        );
        assert_eq!(
            arrivals.skus_since("shop", arrivals.mark("shop")),
            set(&["B", "C"]),
            "closed before the mark: counted"
        );
        assert_eq!(
            arrivals.skus_since("shop", start),
            set(&["A", "B", "C", "E"])
        );
        drop(second);
        drop(other);
        let now = arrivals.mark("shop");
        assert!(arrivals.skus_since("shop", now).is_empty());
        assert!(arrivals.skus_since("woo", arrivals.mark("woo")).is_empty());
    }

    #[test]
    fn only_the_last_closed_deliveries_are_kept() {
        let arrivals = Arc::new(Arrivals::default());
        let start = arrivals.mark("shop");
        for n in 0..CLOSED_KEPT + 10 {
            arrivals.open("shop").touches([format!("S{n}")]);
        }
        let since = arrivals.skus_since("shop", start);
        assert_eq!(since.len(), CLOSED_KEPT);
        assert!(!since.contains("S0") && since.contains(&format!("S{}", CLOSED_KEPT + 9)));
    }
}
