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
    #[arg(
        long,
        env = "INFLUX_URL",
        default_value = DEFAULT_INFLUX_URL,
        hide_env_values = true,
        value_parser = influx_url
    )]
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

/// `INFLUX_URL`'s value parser: empty, or an http(s) URL with a host, so a typo is a
/// configuration error at start (exit 2) rather than a warning every second.
fn influx_url(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let url = reqwest::Url::parse(trimmed).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected http://host:port or https://host:port (or nothing: no stats)".into());
    }
    Ok(text.to_owned())
}
