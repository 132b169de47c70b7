//! Reads that are not urgent and may be long — an order backfill going through a day of
//! orders — go at a fraction of the pace they could once past their first `FREE_PAGES` pages:
//! after each further page, a pause of `PAUSE_PER_BUSY` times the time the page took. Such a
//! read then takes at most a quarter of the time of the store that answers it and of this
//! process that reads it, and leaves the rest to pushes and webhooks, whose latency a burst of
//! pages would otherwise hold up. Short reads (recent orders) are never slowed.

use std::time::{Duration, Instant};

/// Pages a read goes through at full speed.
pub const FREE_PAGES: u32 = 4;
/// The pause after a page past the free ones, per unit of time the page took.
const PAUSE_PER_BUSY: u32 = 3;
/// The longest pause after one page.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// The pace of one long read.
#[derive(Debug)]
pub struct Paced {
    since: Instant,
    pages: u32,
}

impl Paced {
    /// A read starting now.
    pub fn start() -> Self {
        Self {
            since: Instant::now(),
            pages: 0,
        }
    }

    /// After a page (or a part of the work) is done, before the next: past the free pages,
    /// pauses in proportion to the time it took.
    pub async fn after_page(&mut self) {
        self.pages += 1;
        let pause = pause_after(self.pages, self.since.elapsed());
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        self.since = Instant::now();
    }
}

/// The pause after the `page`-th page (from 1), which took `busy`.
fn pause_after(page: u32, busy: Duration) -> Duration {
    if page <= FREE_PAGES {
        return Duration::ZERO;
    }
    (busy * PAUSE_PER_BUSY).min(MAX_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pages_go_at_full_speed_and_the_others_at_a_quarter() {
        let page = Duration::from_millis(40);
        for n in 1..=FREE_PAGES {
            assert_eq!(pause_after(n, page), Duration::ZERO, "page {n}");
        }
        assert_eq!(
            pause_after(FREE_PAGES + 1, page),
            Duration::from_millis(120)
        );
        assert_eq!(pause_after(FREE_PAGES + 7, Duration::ZERO), Duration::ZERO);
        assert_eq!(
            pause_after(FREE_PAGES + 1, Duration::from_secs(5)),
            MAX_PAUSE
        );
    }
}
