//! Where the stats go and come from: the InfluxDB options every binary that touches InfluxDB
//! flattens into its configuration (each with its environment variable).

use std::fmt;
use std::path::Path;

/// How to reach InfluxDB.
#[derive(Debug, Clone, clap::Args)]
pub struct InfluxArgs {
    /// InfluxDB 1.x URL for stats; empty disables stats. Credentials written in it
    /// (http://user:pass@host:8086) are used unless INFLUX_USER is set, and hidden wherever the
    /// URL is shown.
    // --help would show the variable's value, credentials included: hidden.
    #[arg(
        long,
        env = "INFLUX_URL",
        default_value = "http://127.0.0.1:8086",
        hide_env_values = true,
        value_parser = influx_url
    )]
    pub influx_url: String,
    /// InfluxDB database. The stages create it if it is missing and their user may (an
    /// administrator's job when InfluxDB checks credentials).
    #[arg(long, env = "INFLUX_DB", default_value = "chocominer")]
    pub influx_db: String,
    /// InfluxDB user name; when set, credentials written in INFLUX_URL are not used.
    #[arg(long, env = "INFLUX_USER")]
    pub influx_user: Option<String>,
    /// InfluxDB password (INFLUX_PASSWORD_FILE keeps it out of the environment).
    #[arg(long, env = "INFLUX_PASSWORD", hide_env_values = true)]
    pub influx_password: Option<String>,
    /// File holding the InfluxDB password (a trailing line break is dropped), read once at
    /// start, e.g. a mounted secret. Not with INFLUX_PASSWORD.
    #[arg(
        long,
        env = "INFLUX_PASSWORD_FILE",
        value_name = "PATH",
        conflicts_with = "influx_password",
        value_parser = password_file
    )]
    pub influx_password_file: Option<Secret>,
}

impl InfluxArgs {
    /// Arguments for `url` and database `db`, with no credentials.
    pub fn new(url: &str, db: &str) -> InfluxArgs {
        InfluxArgs {
            influx_url: url.to_owned(),
            influx_db: db.to_owned(),
            influx_user: None,
            influx_password: None,
            influx_password_file: None,
        }
    }

    /// The URL without surrounding blanks or a trailing slash; empty when stats are off.
    pub fn url(&self) -> String {
        self.influx_url.trim().trim_end_matches('/').to_owned()
    }

    /// The password given: read from INFLUX_PASSWORD_FILE, or INFLUX_PASSWORD.
    pub fn password(&self) -> Option<&str> {
        self.influx_password_file
            .as_ref()
            .map(Secret::expose)
            .or(self.influx_password.as_deref())
    }
}

/// A password read from a file, shown as `***` by `Debug` (a logged configuration included).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::credentials::HIDDEN)
    }
}

/// The value parser of a password file (`INFLUX_PASSWORD_FILE`, the recorder's too): its content
/// read now, so an unreadable or empty file is a configuration error at start (exit 2).
pub fn password_file(text: &str) -> Result<Secret, String> {
    read_password_file(Path::new(text)).map(Secret)
}

/// The password in `path`: its content without a trailing `\n` or `\r\n` (what `echo` and
/// editors add); an error when it cannot be read or holds nothing.
pub fn read_password_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let password = text
        .strip_suffix('\n')
        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    if password.is_empty() {
        return Err(format!("{} holds no password", path.display()));
    }
    Ok(password.to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        influx: InfluxArgs,
    }

    #[test]
    fn a_password_file_gives_its_content_without_the_line_break() {
        let dir = std::env::temp_dir().join(format!("influx-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (content, password) in [
            ("s3cret\n", "s3cret"),
            ("s3 cret\r\n", "s3 cret"),
            ("pw1", "pw1"),
        ] {
            let path = dir.join("p");
            std::fs::write(&path, content).unwrap();
            let cli = Cli::try_parse_from(["x", "--influx-password-file", path.to_str().unwrap()])
                .unwrap();
            assert_eq!(cli.influx.password(), Some(password));
            assert!(!format!("{cli:?}").contains(password), "{cli:?}");
        }
        std::fs::write(dir.join("empty"), "\n").unwrap();
        for (file, why) in [("empty", "holds no password"), ("missing", "cannot read")] {
            let path = dir.join(file);
            let error =
                Cli::try_parse_from(["x", "--influx-password-file", path.to_str().unwrap()])
                    .unwrap_err()
                    .to_string();
            assert!(error.contains(why), "{error}");
        }
        let path = dir.join("p");
        let both = Cli::try_parse_from([
            "x",
            "--influx-password",
            "a",
            "--influx-password-file",
            path.to_str().unwrap(),
        ]);
        assert_eq!(
            both.unwrap_err().kind(),
            clap::error::ErrorKind::ArgumentConflict
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
