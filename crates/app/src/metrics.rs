//! In-process counters and latency histograms, rendered as Prometheus text at `/metrics`.
//! Propagation latency is measured from the change that marked a push to the channel's
//! acknowledgement of the new quantity.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;

use stockhub_channels::CallCounter;

/// Upper bounds of the latency buckets, in milliseconds.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 60_000,
];

/// How many recent latency samples are kept per channel for quantiles.
const SAMPLES_KEPT: usize = 20_000;

#[derive(Default)]
struct ChannelFigures {
    buckets: [u64; LATENCY_BUCKETS_MS.len()],
    latency_count: u64,
    latency_sum_ms: u64,
    samples: VecDeque<u64>,
    pushed_listings: u64,
    push_failures: u64,
    api_calls: CallCounter,
    results_discarded: u64,
    webhooks: BTreeMap<&'static str, u64>,
}

/// A gauge the caller computes: name, help, and `(labels, value)` samples.
pub type Gauge<'a> = (&'a str, &'a str, Vec<(String, f64)>);

/// A per-channel counter: name, help, and how to read it.
type Counter = (&'static str, &'static str, fn(&ChannelFigures) -> u64);

#[derive(Default)]
pub struct Metrics {
    channels: Mutex<BTreeMap<String, ChannelFigures>>,
}

/// Latency quantiles of recent pushes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quantiles {
    pub count: usize,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

impl Metrics {
    fn with(&self, channel: &str, f: impl FnOnce(&mut ChannelFigures)) {
        if let Ok(mut all) = self.channels.lock() {
            f(all.entry(channel.to_owned()).or_default());
        }
    }

    pub fn record_latency(&self, channel: &str, latency_ms: u64) {
        self.with(channel, |c| {
            let bucket = LATENCY_BUCKETS_MS
                .iter()
                .position(|b| latency_ms <= *b)
                .unwrap_or(LATENCY_BUCKETS_MS.len() - 1);
            c.buckets[bucket] += 1;
            c.latency_count += 1;
            c.latency_sum_ms += latency_ms;
            c.pushed_listings += 1;
            if c.samples.len() == SAMPLES_KEPT {
                c.samples.pop_front();
            }
            c.samples.push_back(latency_ms);
        });
    }

    pub fn record_failure(&self, channel: &str) {
        self.with(channel, |c| c.push_failures += 1);
    }

    /// The count of requests sent to a channel's API, for its connector to add to.
    pub fn api_call_counter(&self, channel: &str) -> CallCounter {
        let mut counter = CallCounter::default();
        self.with(channel, |c| counter = c.api_calls.clone());
        counter
    }

    /// Claims whose push result came after their lease ended, and was discarded.
    pub fn record_discarded(&self, channel: &str, claims: u64) {
        self.with(channel, |c| c.results_discarded += claims);
    }

    pub fn record_webhook(&self, channel: &str, outcome: &'static str) {
        self.with(channel, |c| *c.webhooks.entry(outcome).or_default() += 1);
    }

    /// Requests sent to a channel's API so far.
    pub fn api_calls(&self, channel: &str) -> u64 {
        self.channels
            .lock()
            .ok()
            .and_then(|c| c.get(channel).map(|f| f.api_calls.get()))
            .unwrap_or(0)
    }

    /// Quantiles of the recent latency samples of one channel, or of all when `None`.
    pub fn quantiles(&self, channel: Option<&str>) -> Quantiles {
        let Ok(all) = self.channels.lock() else {
            return Quantiles::default();
        };
        let mut samples: Vec<u64> = all
            .iter()
            .filter(|(code, _)| channel.is_none_or(|c| c == code.as_str()))
            .flat_map(|(_, f)| f.samples.iter().copied())
            .collect();
        if samples.is_empty() {
            return Quantiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Quantiles {
            count: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: *samples.last().unwrap_or(&0),
        }
    }

    /// Forgets the recent samples (between benchmark phases).
    pub fn clear_samples(&self) {
        if let Ok(mut all) = self.channels.lock() {
            for f in all.values_mut() {
                f.samples.clear();
            }
        }
    }

    /// Prometheus text exposition of every figure, plus the gauges given by the caller.
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        let Ok(all) = self.channels.lock() else {
            return out;
        };
        let _ = writeln!(out, "# HELP stockhub_propagation_latency_ms From a stock change to the channel's acknowledgement of the new quantity.");
        let _ = writeln!(out, "# TYPE stockhub_propagation_latency_ms histogram");
        for (channel, f) in all.iter() {
            let mut cumulative = 0;
            for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
                cumulative += f.buckets[i];
                let _ = writeln!(out, "stockhub_propagation_latency_ms_bucket{{channel=\"{channel}\",le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(
                out,
                "stockhub_propagation_latency_ms_bucket{{channel=\"{channel}\",le=\"+Inf\"}} {}",
                f.latency_count
            );
            let _ = writeln!(
                out,
                "stockhub_propagation_latency_ms_sum{{channel=\"{channel}\"}} {}",
                f.latency_sum_ms
            );
            let _ = writeln!(
                out,
                "stockhub_propagation_latency_ms_count{{channel=\"{channel}\"}} {}",
                f.latency_count
            );
        }
        let counters: [Counter; 4] = [
            (
                "stockhub_pushed_listings_total",
                "Listings brought to a new quantity.",
                |f| f.pushed_listings,
            ),
            (
                "stockhub_push_failures_total",
                "Push calls or items that failed.",
                |f| f.push_failures,
            ),
            (
                "stockhub_channel_api_calls_total",
                "Requests sent to the channel's API: pushes, reads of quantities and orders, \
                 discovery.",
                |f| f.api_calls.get(),
            ),
            (
                "stockhub_push_results_discarded_total",
                "Claimed pushes whose result came after their lease ended (another worker had \
                 taken them over) and was discarded.",
                |f| f.results_discarded,
            ),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (channel, f) in all.iter() {
                let _ = writeln!(out, "{name}{{channel=\"{channel}\"}} {}", get(f));
            }
        }
        let _ = writeln!(out, "# HELP stockhub_webhooks_total Webhook deliveries by outcome.\n# TYPE stockhub_webhooks_total counter");
        for (channel, f) in all.iter() {
            for (outcome, n) in &f.webhooks {
                let _ = writeln!(
                    out,
                    "stockhub_webhooks_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        for (name, help, values) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, v) in values {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
        out
    }
}
