//! The commands that act on a running server through its API: `stockhub discover CHANNEL`
//! (`POST /v1/channels/{code}/discover`) and `stockhub replay EVENT_ID`
//! (`POST /v1/events/{id}/replay`). Each prints the result for a person to read, or the raw JSON
//! with `--json`; a refusal prints the server's problem and exits with status 1, a server that
//! cannot be reached exits with status 2.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::client::{segment, Api, ApiError, DEFAULT_SERVER};

#[derive(Debug, clap::Args)]
pub struct ServerArg {
    /// The stockhub server to talk to.
    #[arg(long, value_name = "URL", env = "STOCKHUB_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Print the server's JSON answer as it is instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DiscoverArgs {
    /// The channel's code, as configured with `PUT /v1/channels/{code}`.
    pub channel: String,
    /// Print every entry of the unmatched lists, not only the first 20 of each.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The archived event's id (see `GET /v1/events`).
    pub event_id: i64,
    #[command(flatten)]
    pub server: ServerArg,
}

/// How many entries of each unmatched list are shown without `--all`.
const SHOWN: usize = 20;

pub async fn discover(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server.server)?;
    let path = format!("/v1/channels/{}/discover", segment(&args.channel));
    let report = match api.post(&path, &json!({})).await {
        Ok(report) => report,
        Err(e) => return failed(&format!("discovery of channel {}", args.channel), e),
    };
    if args.server.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", discovery_text(&report, args.all));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server.server)?;
    let id = args.event_id;
    let answer = match api
        .post(&format!("/v1/events/{id}/replay"), &json!({}))
        .await
    {
        Ok(answer) => answer,
        Err(e) => return failed(&format!("replay of event {id}"), e),
    };
    // The archive says what the event was and, when the outcome is not a success, why.
    let event = api.get(&format!("/v1/events/{id}")).await.ok();
    if args.server.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", replay_text(id, &answer, event.as_ref()));
    }
    if answer["outcome"] == "failed" {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a failed request; 1 when the server refused, 2 when it could not be asked.
fn failed(what: &str, e: ApiError) -> anyhow::Result<ExitCode> {
    eprintln!("error: {what} failed: {e}");
    Ok(ExitCode::from(match e {
        ApiError::Refused { .. } => 1,
        ApiError::Unreachable { .. } | ApiError::Unexpected { .. } => 2,
    }))
}

/// A discovery report (`DiscoveryReport` of the store) for a person to read.
pub fn discovery_text(report: &Value, all: bool) -> String {
    let count = |name: &str| report[name].as_array().map_or(0, Vec::len);
    let mut out = format!(
        "channel {}: discovery at {}\n",
        report["channel"].as_str().unwrap_or("?"),
        time_text(report["run_at_ms"].as_i64()),
    );
    out += &format!(
        "  matched listings        {}\n",
        report["matched"].as_u64().unwrap_or(0)
    );
    let lists: [(&str, &str); 4] = [
        ("unknown_channel_skus", "channel SKUs unknown to stockhub"),
        ("missing_on_channel", "stockhub SKUs missing on the channel"),
        ("duplicate_skus", "SKUs on several listings"),
        ("listings_without_sku", "listings without a SKU"),
    ];
    for (name, label) in lists {
        out += &format!("  {label:<38} {}\n", count(name));
        let entries = report[name].as_array().cloned().unwrap_or_default();
        let shown = if all { entries.len() } else { SHOWN };
        for entry in entries.iter().take(shown) {
            out += &format!("    {}\n", entry_text(entry));
        }
        if entries.len() > shown {
            out += &format!(
                "    … and {} more (--all shows them)\n",
                entries.len() - shown
            );
        }
    }
    out
}

/// A list entry: a SKU, a listing key, or `[SKU, [listing keys]]`.
fn entry_text(entry: &Value) -> String {
    match entry {
        Value::String(s) => s.clone(),
        Value::Array(pair) if pair.len() == 2 => {
            let keys: Vec<String> = pair[1]
                .as_array()
                .map(|k| k.iter().map(plain).collect())
                .unwrap_or_default();
            format!("{}  (listings {})", plain(&pair[0]), keys.join(", "))
        }
        other => other.to_string(),
    }
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

pub fn replay_text(id: i64, answer: &Value, event: Option<&Value>) -> String {
    let outcome = answer["outcome"].as_str().unwrap_or("?");
    let mut out = format!("event {id}");
    if let Some(e) = event {
        out += &format!(
            " (channel {}, topic {}, received {})",
            e["channel"].as_str().unwrap_or("?"),
            e["topic"].as_str().unwrap_or("none"),
            time_text(e["received_at_ms"].as_i64()),
        );
    }
    out += &format!(": {outcome}\n");
    if let Some(detail) = event.and_then(|e| e["detail"].as_str()) {
        out += &format!("  {detail}\n");
    }
    out
}

fn time_text(ms: Option<i64>) -> String {
    match ms.and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        None => "an unknown time".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_as_counts_and_lists() {
        let report = json!({
            "channel": "shop", "run_at_ms": 0, "matched": 3,
            "unknown_channel_skus": [["X-1", ["11", "12"]]],
            "listings_without_sku": ["13"],
            "missing_on_channel": ["A", "B"],
            "duplicate_skus": [],
        });
        let text = discovery_text(&report, false);
        assert!(text.contains("matched listings        3"), "{text}");
        assert!(text.contains("X-1  (listings 11, 12)"), "{text}");
        assert!(
            text.contains("stockhub SKUs missing on the channel   2"),
            "{text}"
        );
        assert!(text.contains("1970-01-01T00:00:00.000Z"), "{text}");
    }

    #[test]
    fn long_lists_are_cut_unless_all_is_asked() {
        let missing: Vec<String> = (0..25).map(|i| format!("S-{i}")).collect();
        let report = json!({ "channel": "shop", "matched": 0, "missing_on_channel": missing });
        assert!(discovery_text(&report, false).contains("… and 5 more"));
        assert!(discovery_text(&report, true).contains("S-24"));
    }
}
