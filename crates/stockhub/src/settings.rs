//! Settings: the built-in defaults (`config/default.toml`), then an optional TOML file, then
//! `STOCKHUB_…` environment variables, then command-line flags. Validated once, at start-up,
//! with messages that say what to fix.

use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub db: String,
    pub listen: String,
    pub http: HttpSection,
    pub storage: StorageSection,
    pub maintenance: MaintenanceSection,
    pub channels: ChannelsSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsSection {
    pub reconciliation_interval_seconds: u64,
    pub push_dead_after_hours: u64,
    pub unexplained_hold_seconds: u64,
    pub request_timeout_seconds: u64,
    pub push_lease_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub body_limit_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub group_max: usize,
    pub queue_capacity: usize,
    pub readers: usize,
    pub writers: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSection {
    pub reservation_sweep_interval_ms: u64,
    pub idempotency_retention_hours: u64,
}

/// Overlays `over` onto `base`, table by table.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Replaces every setting named by a `STOCKHUB_…` variable.
fn apply_environment(table: &mut toml::Table, prefix: &str) -> anyhow::Result<()> {
    for (key, value) in table.iter_mut() {
        let name = format!("{prefix}_{}", key.to_uppercase());
        match value {
            toml::Value::Table(inner) => apply_environment(inner, &name)?,
            current => {
                if let Ok(raw) = std::env::var(&name) {
                    *current = match current {
                        toml::Value::Integer(_) => {
                            toml::Value::Integer(raw.parse().with_context(|| {
                                format!("{name} must be a whole number, got {raw:?}")
                            })?)
                        }
                        _ => toml::Value::String(raw),
                    };
                }
            }
        }
    }
    Ok(())
}

impl Settings {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut table: toml::Table = DEFAULTS
            .parse()
            .context("the built-in defaults are not valid TOML")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the settings file {}", path.display()))?;
            let over: toml::Table = text
                .parse()
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            merge(&mut table, over);
        }
        apply_environment(&mut table, "STOCKHUB")?;
        let settings: Settings = toml::Value::Table(table)
            .try_into()
            .context("the settings do not have the expected shape")?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.http.body_limit_bytes < 1024 {
            bail!("http.body_limit_bytes must be at least 1024");
        }
        if self.storage.group_max == 0
            || self.storage.queue_capacity == 0
            || self.storage.readers == 0
            || self.storage.writers == 0
        {
            bail!(
                "storage.group_max, storage.queue_capacity, storage.readers and storage.writers \
                 must be at least 1"
            );
        }
        if self.channels.reconciliation_interval_seconds == 0 {
            bail!("channels.reconciliation_interval_seconds must be at least 1");
        }
        if self.channels.push_dead_after_hours == 0 {
            bail!("channels.push_dead_after_hours must be at least 1");
        }
        if self.channels.unexplained_hold_seconds == 0 {
            bail!("channels.unexplained_hold_seconds must be at least 1");
        }
        if self.channels.request_timeout_seconds == 0 {
            bail!("channels.request_timeout_seconds must be at least 1");
        }
        if self.channels.push_lease_seconds < 2 * self.channels.request_timeout_seconds {
            bail!(
                "channels.push_lease_seconds ({}) must be at least twice \
                 channels.request_timeout_seconds ({}): a push worker sends no call once its \
                 lease may end before the answer arrives, so a shorter lease leaves it no time",
                self.channels.push_lease_seconds,
                self.channels.request_timeout_seconds
            );
        }
        if self.maintenance.reservation_sweep_interval_ms == 0 {
            bail!("maintenance.reservation_sweep_interval_ms must be at least 1");
        }
        if self.maintenance.idempotency_retention_hours < 168 {
            bail!("maintenance.idempotency_retention_hours must be at least 168 (7 days)");
        }
        self.listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| {
                format!(
                    "listen must be an address like 127.0.0.1:8080, got {:?}",
                    self.listen
                )
            })?;
        Ok(())
    }

    pub fn storage_options(&self) -> stockhub_store::StoreOptions {
        stockhub_store::StoreOptions {
            queue_capacity: self.storage.queue_capacity,
            group_max: self.storage.group_max,
            readers: self.storage.readers,
            writers: self.storage.writers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let s = Settings::load(None).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.db, "stockhub.db");
        assert_eq!(s.http.body_limit_bytes, 32 * 1024 * 1024);
    }

    #[test]
    fn a_file_overrides_defaults_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "[storage]\ngroup_max = 7\n").unwrap();
        assert_eq!(Settings::load(Some(&path)).unwrap().storage.group_max, 7);
        std::fs::write(&path, "[maintenance]\nidempotency_retention_hours = 1\n").unwrap();
        let e = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(e.contains("168"), "{e}");
        std::fs::write(&path, "[storage]\ngroup_maximum = 7\n").unwrap();
        assert!(Settings::load(Some(&path)).is_err());
    }

    #[test]
    fn a_push_lease_shorter_than_two_channel_calls_is_refused() {
        let defaults = Settings::load(None).unwrap().channels;
        assert_eq!(
            (
                defaults.push_lease_seconds,
                defaults.request_timeout_seconds
            ),
            (60, 10)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        let with = |lease: u64, timeout: u64| {
            std::fs::write(
                &path,
                format!("[channels]\npush_lease_seconds = {lease}\nrequest_timeout_seconds = {timeout}\n"),
            )
            .unwrap();
            Settings::load(Some(&path))
        };
        let loaded = with(4, 2).unwrap().channels;
        assert_eq!(
            (loaded.push_lease_seconds, loaded.request_timeout_seconds),
            (4, 2)
        );
        let e = with(3, 2).unwrap_err().to_string();
        assert!(
            e.contains("push_lease_seconds (3) must be at least twice"),
            "{e}"
        );
        let e = with(60, 0).unwrap_err().to_string();
        assert!(
            e.contains("request_timeout_seconds must be at least 1"),
            "{e}"
        );
    }
}
