//! Command-line and environment configuration shared by every stage.
//!
//! Each binary has one `Config` (clap derive) that flattens [`CommonArgs`] and adds its own
//! knobs. Every flag also reads an environment variable, so containers configure services
//! with `environment:` alone.

use std::path::PathBuf;
use std::time::Duration;

use crate::profile::Profile;
use crate::subjects::{DEFAULT_PREFIX, Subjects};

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_INFLUX_URL: &str = "http://127.0.0.1:8086";
pub const DEFAULT_INFLUX_DB: &str = "chocominer";

/// Text appended to every binary's `--help`.
pub const ENV_HELP: &str = "Every option can also be set by the environment variable shown \
with it. Logging is set with RUST_LOG (default: info), e.g. RUST_LOG=debug.";

/// How to reach NATS.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated. Credentials in the URL (user:pass@ or token@) are
    /// taken out and passed as options.
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS_URL)]
    pub nats_url: String,
    /// NATS user name (with --nats-password).
    #[arg(long, env = "NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password.
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS authentication token.
    #[arg(long, env = "NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// NATS credentials file (JWT + NKey seed).
    #[arg(long, env = "NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate (PEM) to verify the NATS server's TLS certificate; implies TLS.
    #[arg(long, env = "NATS_CA")]
    pub nats_ca: Option<PathBuf>,
    /// Prefix of the pipeline's subjects: <prefix>.numbers, <prefix>.digests, <prefix>.nuggets.
    #[arg(long, env = "SUBJECT_PREFIX", default_value = DEFAULT_PREFIX)]
    pub subject_prefix: String,
}

/// Where the per-second stats go.
#[derive(Debug, Clone, clap::Args)]
pub struct InfluxArgs {
    /// InfluxDB 1.x URL for stats; empty disables stats.
    #[arg(long, env = "INFLUX_URL", default_value = DEFAULT_INFLUX_URL)]
    pub influx_url: String,
    /// InfluxDB database, created if missing.
    #[arg(long, env = "INFLUX_DB", default_value = DEFAULT_INFLUX_DB)]
    pub influx_db: String,
    /// InfluxDB user name.
    #[arg(long, env = "INFLUX_USER")]
    pub influx_user: Option<String>,
    /// InfluxDB password.
    #[arg(long, env = "INFLUX_PASSWORD", hide_env_values = true)]
    pub influx_password: Option<String>,
}

/// Options every stage has.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub influx: InfluxArgs,
    /// Name of this instance in stats and headers [default: <host name>-<pid>].
    #[arg(long, env = "INSTANCE")]
    pub instance: Option<String>,
    /// Pacing profile: demo (slow, for the scaling lesson) or full (flat out). Sets the default
    /// of every knob that is not given.
    #[arg(long, env = "CHOCOMINER_PROFILE", value_enum, default_value_t)]
    pub profile: Profile,
    /// Milliseconds a sender waits for a batch's acknowledgement before counting it as lost
    /// [default: demo 10000, full 5000].
    #[arg(long, env = "ACK_TIMEOUT_MS")]
    pub ack_timeout_ms: Option<u64>,
}

impl CommonArgs {
    /// The instance name: as configured, or `<host name>-<pid>` (the pod name in Kubernetes).
    pub fn instance_name(&self) -> String {
        match &self.instance {
            Some(name) if !name.trim().is_empty() => name.trim().to_owned(),
            _ => format!("{}-{}", host_name(), std::process::id()),
        }
    }

    pub fn subjects(&self) -> Subjects {
        Subjects::new(&self.nats.subject_prefix)
    }

    pub fn ack_timeout(&self) -> Duration {
        self.ack_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.profile.defaults().ack_timeout)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn instance_defaults_to_host_and_pid() {
        let cli = Cli::parse_from(["x", "--instance", " "]);
        let name = cli.common.instance_name();
        assert!(
            name.ends_with(&format!("-{}", std::process::id())),
            "{name}"
        );
        let cli = Cli::parse_from(["x", "--instance", "w1", "--profile", "full"]);
        assert_eq!(cli.common.instance_name(), "w1");
        assert_eq!(
            cli.common.ack_timeout(),
            Profile::Full.defaults().ack_timeout
        );
    }
}
