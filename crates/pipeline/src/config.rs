//! The options every stage has, [`CommonArgs`], flattened into each stage binary's `Config`.

use std::time::Duration;

use chocominer_influx::InfluxArgs;
use chocominer_model::Subjects;
use chocominer_process::{HealthArgs, NatsArgs, default_instance, host_name, parse_instance};

use crate::profile::Profile;

/// Options every stage has.
// The field comments are clap's `--help` text, written for a terminal: `<host name>` is not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub influx: InfluxArgs,
    #[command(flatten)]
    pub health: HealthArgs,
    /// Name of this instance in stats and headers: 1 to 80 letters, digits, '.', '_' or '-'
    /// [default: <host name>-<pid>, or the host name alone in a container (pid 1), i.e. the
    /// container or pod name].
    #[arg(long, env = "INSTANCE", value_parser = parse_instance)]
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
    /// The instance name as configured, or `default_instance`.
    pub fn instance_name(&self) -> String {
        match &self.instance {
            Some(name) if !name.trim().is_empty() => name.trim().to_owned(),
            _ => default_instance(&host_name(), std::process::id()),
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
        assert_eq!(name, default_instance(&host_name(), std::process::id()));
        let cli = Cli::parse_from(["x", "--instance", "w1", "--profile", "full"]);
        assert_eq!(cli.common.instance_name(), "w1");
        assert_eq!(
            cli.common.ack_timeout(),
            Profile::Full.defaults().ack_timeout
        );
    }

    #[test]
    fn the_profile_is_one_of_two() {
        assert!(Cli::try_parse_from(["x", "--profile", "demo"]).is_ok());
        let error = Cli::try_parse_from(["x", "--profile", "fast"])
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("[possible values: demo, full]"),
            "{error}"
        );
    }
}
