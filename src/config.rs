//! Settings: the embedded `config/default.toml`, then an optional file, then
//! `KILN_*` environment variables, then command-line flags — later wins.
//!
//! The defaults are compiled in rather than looked up through the current
//! directory, so `kiln` behaves the same wherever it is started.

use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Limits {
    pub max_upload_bytes: u64,
    pub max_rows: usize,
    pub max_features: usize,
    pub max_params: u64,
    pub max_units: usize,
    pub max_layers: usize,
    pub max_epochs: u32,
    pub max_batch_size: usize,
    pub job_wall_time_secs: u64,
    pub teacher_cache_bytes: u64,
}

/// The orphan blob sweep (`services::blob_gc`).
#[derive(Debug, Clone, Deserialize)]
pub struct BlobSettings {
    pub gc_interval_secs: u64,
    pub gc_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueSettings {
    pub lease_secs: u64,
    pub heartbeat_secs: u64,
    pub poll_secs: u64,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub workers: usize,
    pub log_format: LogFormat,
    pub limits: Limits,
    pub blobs: BlobSettings,
    pub queue: QueueSettings,
}

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub workers: Option<usize>,
    pub log_format: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

/// `KILN_LISTEN` for top-level keys, `KILN_LIMITS__MAX_EPOCHS` for nested ones.
fn environment() -> Environment {
    Environment::with_prefix("KILN")
        .prefix_separator("_")
        .separator("__")
}

impl Settings {
    /// Loads the layered configuration from the process environment.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(overrides, environment())
    }

    /// The defaults alone, as tests start from.
    pub fn defaults() -> Result<Self, ConfigError> {
        let cfg = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()?;
        Ok(cfg.try_deserialize()?)
    }

    fn load_from(overrides: &Overrides, env: Environment) -> Result<Self, ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = &overrides.config_file {
            builder = builder.add_source(File::from(path.as_path()).required(true));
        }
        builder = builder.add_source(env.try_parsing(true));
        if let Some(v) = &overrides.listen {
            builder = builder.set_override("listen", v.as_str())?;
        }
        if let Some(v) = &overrides.data_dir {
            builder = builder.set_override("data_dir", v.to_string_lossy().as_ref())?;
        }
        if let Some(v) = overrides.workers {
            builder = builder.set_override("workers", v as u64)?;
        }
        if let Some(v) = &overrides.log_format {
            builder = builder.set_override("log_format", v.as_str())?;
        }
        Ok(builder.build()?.try_deserialize()?)
    }

    /// Worker threads to run: the configured count, or one per core when 0.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    pub fn architecture_limits(&self) -> crate::nn::spec::ArchitectureLimits {
        crate::nn::spec::ArchitectureLimits {
            max_params: self.limits.max_params,
            max_units: self.limits.max_units,
            max_layers: self.limits.max_layers,
        }
    }

    pub fn job_limits(&self) -> crate::jobs::JobLimits {
        crate::jobs::JobLimits {
            max_epochs: self.limits.max_epochs,
            max_batch_size: self.limits.max_batch_size,
            architecture: self.architecture_limits(),
            teacher_cache_bytes: self.limits.teacher_cache_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Environment {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        environment().source(Some(map))
    }

    #[test]
    fn defaults_listen_on_loopback_with_a_local_data_dir() {
        let s = Settings::defaults().expect("defaults parse");
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.log_format, LogFormat::Text);
        assert!(s.worker_count() >= 1);
    }

    #[test]
    fn environment_overrides_defaults_and_flags_override_environment() {
        let vars = [
            ("KILN_LISTEN", "0.0.0.0:9000"),
            ("KILN_WORKERS", "3"),
            ("KILN_LIMITS__MAX_EPOCHS", "7"),
            ("KILN_LOG_FORMAT", "json"),
        ];
        let s = Settings::load_from(&Overrides::default(), env(&vars)).expect("loads");
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.workers, 3);
        assert_eq!(s.limits.max_epochs, 7);
        assert_eq!(s.log_format, LogFormat::Json);

        let flags = Overrides {
            listen: Some("127.0.0.1:1".into()),
            workers: Some(1),
            ..Overrides::default()
        };
        let s = Settings::load_from(&flags, env(&vars)).expect("loads");
        assert_eq!(s.listen, "127.0.0.1:1");
        assert_eq!(s.workers, 1);
    }

    #[test]
    fn a_malformed_value_is_an_error_not_a_default() {
        for vars in [
            [("KILN_WORKERS", "many")],
            [("KILN_BLOBS__GC_INTERVAL_SECS", "hourly")],
            [("KILN_BLOBS__GC_GRACE_SECS", "-1")],
        ] {
            assert!(
                Settings::load_from(&Overrides::default(), env(&vars)).is_err(),
                "{vars:?}"
            );
        }
    }
}
