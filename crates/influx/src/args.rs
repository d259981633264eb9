//! Where the stats go and come from: the InfluxDB options every binary that touches InfluxDB
//! flattens into its configuration (each with its environment variable).

pub const DEFAULT_INFLUX_URL: &str = "http://127.0.0.1:8086";
pub const DEFAULT_INFLUX_DB: &str = "chocominer";

/// How to reach InfluxDB.
#[derive(Debug, Clone, clap::Args)]
pub struct InfluxArgs {
    /// InfluxDB 1.x URL for stats; empty disables stats. Credentials written in it
    /// (http://user:pass@host:8086) are used, and hidden wherever the URL is shown.
    // --help would show the variable's value, credentials included: hidden.
    #[arg(long, env = "INFLUX_URL", default_value = DEFAULT_INFLUX_URL, hide_env_values = true)]
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

impl InfluxArgs {
    /// The URL without surrounding blanks or a trailing slash; empty when stats are off.
    pub fn url(&self) -> String {
        self.influx_url.trim().trim_end_matches('/').to_owned()
    }
}
