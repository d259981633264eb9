//! Command-line and environment configuration shared by every process: each binary's one
//! `Config` (clap derive) flattens the groups it needs and is parsed once with [`parse`]. Every
//! flag also reads an environment variable, so containers are configured by `environment:`.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use chocominer_influx::read_password_file;

use chocominer_model::DEFAULT_PREFIX;

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// Room for the windows of 32 hashers sending to one worker (8 each), or of 8 demo rngs
/// sending to one hasher (32 each).
pub const DEFAULT_SUBSCRIPTION_CAPACITY: u64 = 256;
/// More would only let a flood take more memory (async-nats's own default is 65536).
const MAX_SUBSCRIPTION_CAPACITY: u64 = 1 << 20;

/// Appended to every binary's `--help`.
pub const ENV_HELP: &str = "Every option can also be set by the environment variable shown \
with it. Logging is set with RUST_LOG (default: info), e.g. RUST_LOG=debug.";

/// How to reach NATS.
// The field comments are clap's `--help` text, written for a terminal: `<prefix>` is not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated. Credentials written in a URL (user:pass@, token@)
    /// are refused: give them as --nats-user with --nats-password or --nats-password-file.
    // --help would show the variable's value, a mistaken password included: hidden.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = DEFAULT_NATS_URL,
        hide_env_values = true,
        value_parser = nats_urls
    )]
    pub nats_url: String,
    /// NATS user name (with --nats-password or --nats-password-file). It also names the
    /// client's reply inboxes, `_INBOX.<user>.`, which the server lets only this user read.
    #[arg(long, env = "NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password. Prefer --nats-password-file: a variable or argument is easier to leak.
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// File holding the NATS password (a trailing line break is not part of it), e.g. a
    /// mounted secret. Read at start.
    #[arg(
        long,
        env = "NATS_PASSWORD_FILE",
        value_parser = password_file,
        conflicts_with = "nats_password"
    )]
    pub nats_password_file: Option<PathBuf>,
    /// NATS authentication token.
    #[arg(long, env = "NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// NATS credentials file (JWT + NKey seed).
    #[arg(long, env = "NATS_CREDS", value_parser = readable_file)]
    pub nats_creds: Option<PathBuf>,
    /// Connect with TLS, and refuse a server that does not speak it (also implied by
    /// --nats-ca, --nats-cert or a tls:// URL). The server's certificate is checked against
    /// NATS_CA, or the system's roots without it.
    #[arg(long, env = "NATS_TLS")]
    pub nats_tls: bool,
    /// CA certificate (PEM) to verify the NATS server's TLS certificate; implies TLS.
    #[arg(long, env = "NATS_CA", value_parser = readable_file)]
    pub nats_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, for servers that verify their clients; needs
    /// --nats-key; implies TLS.
    #[arg(long, env = "NATS_CERT", value_parser = readable_file, requires = "nats_key")]
    pub nats_cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate --nats-cert.
    #[arg(long, env = "NATS_KEY", value_parser = readable_file, requires = "nats_cert")]
    pub nats_key: Option<PathBuf>,
    /// Prefix of the pipeline's subjects: <prefix>.numbers, <prefix>.digests, <prefix>.nuggets.
    #[arg(long, env = "SUBJECT_PREFIX", default_value = DEFAULT_PREFIX)]
    pub subject_prefix: String,
    /// Messages the NATS client holds for each subscription until they are taken; more are
    /// dropped (a slow consumer, logged) and their senders count them as lost. With the
    /// server's max payload, this bounds the memory a flood of messages can take.
    #[arg(long, env = "NATS_SUBSCRIPTION_CAPACITY", default_value_t = DEFAULT_SUBSCRIPTION_CAPACITY, value_parser = clap::value_parser!(u64).range(1..=MAX_SUBSCRIPTION_CAPACITY))]
    pub nats_subscription_capacity: u64,
}

impl NatsArgs {
    pub fn tls_wanted(&self) -> bool {
        self.nats_tls
            || self.nats_ca.is_some()
            || self.nats_cert.is_some()
            || self
                .server_urls()
                .iter()
                .any(|url| url.starts_with("tls://"))
    }

    /// The server URLs of `NATS_URL`, one per server: async-nats reads one string as one address.
    pub fn server_urls(&self) -> Vec<String> {
        split_urls(&self.nats_url)
    }

    pub fn password(&self) -> anyhow::Result<Option<String>> {
        match (&self.nats_password, &self.nats_password_file) {
            (Some(password), _) => Ok(Some(password.clone())),
            (None, Some(path)) => read_password_file(path)
                .map(Some)
                .map_err(anyhow::Error::msg),
            (None, None) => Ok(None),
        }
    }
}

/// The largest `max_payload` a nats-server takes (a 32-bit signed number of bytes).
pub const NATS_PAYLOAD_LIMIT: usize = i32::MAX as usize;

/// A setting found unworkable only once connected (a batch the server's max payload cannot
/// carry): the binary exits with code 2, as for a setting refused at start.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {setting}: {reason}")]
pub struct SettingError {
    /// The environment variable (its flag is named in `--help`).
    pub setting: &'static str,
    pub reason: String,
}

pub(crate) fn split_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `NATS_URL`'s value parser: a typo is an error at start (exit 2), not a wait for a server
/// that cannot be. Credentials in a URL are refused: the client would ignore them.
fn nats_urls(text: &str) -> Result<String, String> {
    for url in split_urls(text) {
        let (clean, userinfo) = chocominer_influx::credentials::split_userinfo(&url);
        if userinfo.is_some() {
            return Err(format!(
                "{clean}: credentials written in the URL are not used; give them as NATS_USER \
                 and NATS_PASSWORD or NATS_PASSWORD_FILE"
            ));
        }
        url.parse::<async_nats::ServerAddr>()
            .map_err(|e| format!("{url}: {e}"))?;
    }
    Ok(text.to_owned())
}

/// `NATS_PASSWORD_FILE`'s value parser: readable and not empty at start.
fn password_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    read_password_file(&path).map(|_| path)
}

/// A file that must be readable at start: better an error then than once connecting.
fn readable_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    std::fs::File::open(&path)
        .map(|_| path)
        .map_err(|e| format!("cannot read {text}: {e}"))
}

/// The health endpoints and their probe ([`crate::health`]), in every long-running binary.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HealthArgs {
    /// Address to serve GET /healthz (alive) and GET /readyz (ready for work) on, e.g.
    /// 0.0.0.0:8081 in a container [default: none, no health server].
    #[arg(long, env = "HEALTH_LISTEN", value_name = "ADDRESS")]
    pub health_listen: Option<OptionalAddr>,
    /// Ask the instance running here whether it is ready (GET /readyz on HEALTH_LISTEN, 0.0.0.0
    /// read as 127.0.0.1), print one line and exit: 0 ready, 1 not ready, 2 no HEALTH_LISTEN.
    /// For container health checks. A flag only: the service shares the container's
    /// environment, so a variable would make it a probe too.
    #[arg(long)]
    pub health_check: bool,
}

impl HealthArgs {
    pub fn listen(&self) -> Option<SocketAddr> {
        self.health_listen.and_then(|address| address.0)
    }
}

/// An address like `0.0.0.0:8081`, or none when empty (`HEALTH_LISTEN=` is "off").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddr(pub Option<SocketAddr>);

impl FromStr for OptionalAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<OptionalAddr, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(OptionalAddr(None));
        }
        text.parse()
            .map(|address| OptionalAddr(Some(address)))
            .map_err(|_| {
                "expected an IP address and port, like 0.0.0.0:8081 or [::]:8081, or nothing".into()
            })
    }
}

/// A host name of 64 characters (the kernel's limit), a dash and a pid fit.
pub const MAX_INSTANCE_LEN: usize = 80;

/// What host, container and pod names are made of.
fn instance_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Checks an instance name as given; blank means "the default". It tags every stats point, and
/// the line protocol cannot escape a line break in a tag: `INSTANCE=$'w1\nnugget'` would write
/// points of its own.
pub fn parse_instance(text: &str) -> Result<String, String> {
    let name = text.trim();
    let rule = format!(
        "an instance name is 1 to {MAX_INSTANCE_LEN} letters, digits, '.', '_' or '-' (it tags \
         the stats in InfluxDB and the batches' headers)"
    );
    if let Some(bad) = name.chars().find(|&c| !instance_char(c)) {
        let what = if bad.is_control() {
            "a control character"
        } else {
            "another character"
        };
        return Err(format!("{rule}; this one holds {what}, {:?}", bad));
    }
    // ASCII by now: bytes are characters.
    if name.len() > MAX_INSTANCE_LEN {
        return Err(format!("{rule}; this one has {} characters", name.len()));
    }
    Ok(name.to_owned())
}

/// `C::parse()`, except that an invalid value read from an environment variable names it:
/// "invalid value 'abc' for RNG_RATE (--rate \<RATE\>)", not only the flag never typed.
pub fn parse<C: clap::Parser>() -> C {
    C::try_parse().unwrap_or_else(|error| exit_on::<C>(error))
}

/// [`parse`], and also `A`, a group of options flattened into `C` (how [`crate::main`] finds
/// `--health-check`).
pub fn parse_with<C: clap::Parser, A: clap::FromArgMatches>() -> (C, A) {
    let matches = C::command()
        .try_get_matches()
        .unwrap_or_else(|error| exit_on::<C>(error));
    let config = C::from_arg_matches(&matches).unwrap_or_else(|error| exit_on::<C>(error));
    let part = A::from_arg_matches(&matches).unwrap_or_else(|error| exit_on::<C>(error));
    (config, part)
}

/// Prints `error` (its variable named, see [`name_the_variable`]) and exits as clap does.
fn exit_on<C: clap::Parser>(error: clap::Error) -> ! {
    let args: Vec<OsString> = std::env::args_os().collect();
    name_the_variable(error, C::command(), &args, |var| std::env::var_os(var)).exit()
}

/// `error` with the environment variable named, when the invalid value came from one (set to
/// that very value, its flag not among `args`); the value shown with its control characters
/// escaped (one line), and a hidden one without credentials. Other errors as they are.
fn name_the_variable(
    error: clap::Error,
    mut cmd: clap::Command,
    args: &[OsString],
    env: impl Fn(&OsStr) -> Option<OsString>,
) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return error;
    }
    let (Some(ContextValue::String(shown)), Some(ContextValue::String(value))) = (
        error.get(ContextKind::InvalidArg),
        error.get(ContextKind::InvalidValue),
    ) else {
        return error;
    };
    // Found by how the error names it, `--rate <RATE>` (once the command is built).
    cmd.build();
    let refused: Vec<&clap::Arg> = all_args(&cmd)
        .filter(|arg| arg.to_string() == *shown)
        .collect();
    let var = refused
        .iter()
        .filter(|arg| !given(arg, args))
        .filter_map(|arg| arg.get_env())
        .find(|var| env(var).is_some_and(|set| set.to_string_lossy() == value.as_str()));
    let escaped = if refused.iter().any(|arg| arg.is_hide_env_values_set()) {
        escape_controls(&chocominer_influx::redact_url(value))
    } else {
        escape_controls(value)
    };
    if var.is_none() && escaped == *value {
        return error;
    }
    // Clap's message, the value written anew (its rendering strips escape sequences, not
    // other control characters) and "for '--rate <RATE>'" naming the variable.
    let text = error.render().to_string();
    let quoted = format!("for '{shown}'");
    let Some((_, tail)) = text
        .strip_prefix("error: invalid value '")
        .and_then(|message| message.split_once(&quoted))
    else {
        return error;
    };
    let named = match var {
        Some(var) => format!("for {} ({shown})", var.to_string_lossy()),
        None => quoted,
    };
    let message = format!("invalid value '{escaped}' {named}{tail}");
    clap::Error::raw(error.kind(), message).with_cmd(&cmd)
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`).
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The arguments of `cmd` and of all its subcommands.
fn all_args(cmd: &clap::Command) -> Box<dyn Iterator<Item = &clap::Arg> + '_> {
    Box::new(
        cmd.get_arguments()
            .chain(cmd.get_subcommands().flat_map(all_args)),
    )
}

/// Whether `arg`'s flag is on the command line (`--rate 5`, `--rate=5`, `-r5`).
fn given(arg: &clap::Arg, args: &[OsString]) -> bool {
    args.iter().skip(1).filter_map(|a| a.to_str()).any(|a| {
        let long = arg.get_long().is_some_and(|long| {
            a.strip_prefix("--")
                .and_then(|rest| rest.strip_prefix(long))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
        });
        let short = arg.get_short().is_some_and(|short| {
            a.strip_prefix('-')
                .is_some_and(|rest| !rest.starts_with('-') && rest.starts_with(short))
        });
        long || short
    })
}

/// The instance name when none is configured: `<host>-<pid>`, or in a container (pid 1) the
/// host name alone, already the container's or pod's. Anything in the host name an instance
/// name does not allow becomes `-`, and it is cut to 64, so it always passes [`parse_instance`].
pub fn default_instance(host: &str, pid: u32) -> String {
    let host: String = host
        .chars()
        .map(|c| if instance_char(c) { c } else { '-' })
        .take(64)
        .collect();
    if pid == 1 {
        host
    } else {
        format!("{host}-{pid}")
    }
}

/// This machine's host name (a container's or pod's name in one).
pub fn host_name() -> String {
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
    use clap::{CommandFactory, Parser};

    #[test]
    fn urls_are_split_at_commas() {
        assert_eq!(
            split_urls("nats://127.0.0.1:4222"),
            ["nats://127.0.0.1:4222"]
        );
        assert_eq!(
            split_urls("nats://nats:4222, nats://other:4222,"),
            ["nats://nats:4222", "nats://other:4222"]
        );
    }

    /// A pacing profile, chosen from a list as a stage's is.
    #[derive(Clone, Copy, Default, clap::ValueEnum)]
    enum Pace {
        #[default]
        Demo,
        Full,
    }

    /// What a stage's options hold: the shared groups, an instance name, a profile.
    #[derive(clap::Args)]
    #[allow(dead_code)] // instance and profile are parsed for their errors, never read
    struct Common {
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        health: HealthArgs,
        #[arg(long, env = "INSTANCE", value_parser = parse_instance)]
        instance: Option<String>,
        #[arg(long, env = "CHOCOMINER_PROFILE", value_enum, default_value_t)]
        profile: Pace,
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: Common,
    }

    /// A command like a stage's: a float, an enum, and a subcommand with its own variable.
    #[derive(Parser)]
    struct Stage {
        #[arg(long, short, env = "TEST_RATE")]
        rate: Option<f64>,
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        sub: Option<Sub>,
    }

    #[derive(clap::Subcommand)]
    enum Sub {
        Watch {
            #[arg(long, env = "TEST_EVERY")]
            every: Option<u64>,
        },
    }

    /// The error `args` give, retold as if the environment held `vars`, the command line
    /// being `typed`.
    fn retold(args: &[&str], typed: &[&str], vars: &[(&str, &str)]) -> clap::Error {
        let error = match Stage::try_parse_from(args) {
            Ok(_) => panic!("{args:?} parse"),
            Err(error) => error,
        };
        let typed: Vec<OsString> = typed.iter().map(OsString::from).collect();
        name_the_variable(error, Stage::command(), &typed, |var| {
            vars.iter()
                .find(|(name, _)| OsStr::new(name) == var)
                .map(|(_, value)| value.into())
        })
    }

    #[test]
    fn an_invalid_value_from_the_environment_names_the_variable() {
        let error = retold(&["x", "--rate", "abc"], &["x"], &[("TEST_RATE", "abc")]);
        let text = error.to_string();
        assert!(
            text.starts_with(
                "error: invalid value 'abc' for TEST_RATE (--rate <RATE>): invalid float literal"
            ),
            "{text}"
        );
        assert!(text.contains("--help"), "{text}");
        assert_eq!(error.exit_code(), 2);

        // A value clap chooses from a list keeps the list.
        let error = retold(
            &["x", "--profile", "fast"],
            &["x"],
            &[("CHOCOMINER_PROFILE", "fast")],
        );
        let text = error.to_string();
        assert!(
            text.starts_with(
                "error: invalid value 'fast' for CHOCOMINER_PROFILE (--profile <PROFILE>)"
            ),
            "{text}"
        );
        assert!(text.contains("[possible values: demo, full]"), "{text}");

        // A subcommand's argument is found too.
        let error = retold(
            &["x", "watch", "--every", "abc"],
            &["x", "watch"],
            &[("TEST_EVERY", "abc")],
        );
        assert!(
            error
                .to_string()
                .starts_with("error: invalid value 'abc' for TEST_EVERY (--every <EVERY>)"),
            "{error}"
        );
    }

    #[test]
    fn a_value_typed_on_the_command_line_names_only_the_flag() {
        let clap_says = "error: invalid value 'abc' for '--rate <RATE>'";
        for typed in [
            &["x", "--rate", "abc"][..],
            &["x", "--rate=abc"],
            &["x", "-r", "abc"],
            &["x", "-rabc"],
        ] {
            let error = retold(&["x", "--rate", "abc"], typed, &[("TEST_RATE", "abc")]);
            assert!(
                error.to_string().starts_with(clap_says),
                "{typed:?}: {error}"
            );
        }
        // The variable holds something else, or nothing: it is not what clap refused.
        for vars in [&[("TEST_RATE", "12")][..], &[]] {
            let error = retold(&["x", "--rate", "abc"], &["x"], vars);
            assert!(
                error.to_string().starts_with(clap_says),
                "{vars:?}: {error}"
            );
        }
        // Other errors are clap's, unchanged.
        let error = retold(&["x", "--rat", "1"], &["x"], &[("TEST_RATE", "1")]);
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
        assert!(error.to_string().contains("'--rat'"), "{error}");
    }

    #[test]
    fn the_health_address_is_optional_and_empty_means_none() {
        let cli = Cli::parse_from(["x"]);
        assert_eq!(cli.common.health.listen(), None);
        assert!(!cli.common.health.health_check);
        let cli = Cli::parse_from(["x", "--health-listen", ""]);
        assert_eq!(cli.common.health.listen(), None);
        let cli = Cli::parse_from(["x", "--health-listen", "0.0.0.0:8081", "--health-check"]);
        assert_eq!(
            cli.common.health.listen(),
            Some("0.0.0.0:8081".parse().unwrap())
        );
        assert!(cli.common.health.health_check);
        let error = retold(
            &["x", "--health-listen", "localhost"],
            &["x"],
            &[("HEALTH_LISTEN", "localhost")],
        );
        assert!(
            error.to_string().starts_with(
                "error: invalid value 'localhost' for HEALTH_LISTEN (--health-listen <ADDRESS>): \
                 expected an IP address and port"
            ),
            "{error}"
        );
    }

    #[test]
    fn credentials_in_the_nats_url_are_refused_without_being_shown() {
        for url in [
            "nats://rng:s3cret@nats:4222",
            "nats://nats:4222,tls://s3cret@other:4443",
        ] {
            let error = retold(&["x", "--nats-url", url], &["x"], &[("NATS_URL", url)]);
            let text = error.to_string();
            assert_eq!(error.exit_code(), 2);
            let first = text.lines().next().unwrap_or_default();
            assert!(first.contains("for NATS_URL"), "{text}");
            assert!(first.contains("give them as NATS_USER"), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        let cli = Cli::parse_from(["x", "--nats-url", "nats://a:4222, nats://b:4222"]);
        assert_eq!(
            cli.common.nats.server_urls(),
            ["nats://a:4222", "nats://b:4222"]
        );
    }

    #[test]
    fn the_password_file_is_read_at_start_without_its_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nats.password");
        std::fs::write(&file, "s3cret\r\n").unwrap();
        let path = file.to_str().unwrap();
        let cli = Cli::parse_from(["x", "--nats-user", "rng", "--nats-password-file", path]);
        assert_eq!(
            cli.common.nats.password().unwrap().as_deref(),
            Some("s3cret")
        );
        // Both at once: which one is meant?
        let both = ["x", "--nats-password", "a", "--nats-password-file", path];
        assert!(Cli::try_parse_from(both).is_err());
        // Missing or empty: a configuration error at start, naming the file.
        let missing = dir.path().join("none");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        for bad in [missing, dir.path().join("empty")] {
            let bad = bad.to_str().unwrap();
            let error = Cli::try_parse_from(["x", "--nats-password-file", bad])
                .err()
                .unwrap();
            assert_eq!(error.exit_code(), 2);
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn the_subscription_capacity_has_a_default_and_bounds() {
        let cli = Cli::parse_from(["x"]);
        assert_eq!(
            cli.common.nats.nats_subscription_capacity,
            DEFAULT_SUBSCRIPTION_CAPACITY
        );
        let cli = Cli::parse_from(["x", "--nats-subscription-capacity", "16"]);
        assert_eq!(cli.common.nats.nats_subscription_capacity, 16);
        // None would hold nothing (and async-nats cannot make such a channel); a million is
        // more than any window needs and a flood's free pass.
        for bad in ["0", "-1", "2000000", "many"] {
            assert!(
                Cli::try_parse_from(["x", "--nats-subscription-capacity", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_default_instance_is_the_host_name_alone_in_a_container() {
        assert_eq!(default_instance("laptop", 4242), "laptop-4242");
        assert_eq!(
            default_instance("chocominer-hasher-2", 1),
            "chocominer-hasher-2"
        );
        assert_eq!(
            default_instance("hasher-7d9f8b6c5-x2x4q", 1),
            "hasher-7d9f8b6c5-x2x4q"
        );
    }

    #[test]
    fn instance_names_that_could_break_a_line_of_line_protocol_are_refused() {
        let longest = "x".repeat(MAX_INSTANCE_LEN);
        for good in [
            "w1",
            "chocominer-hasher-2",
            "hasher-7d9f8b6c5-x2x4q",
            "laptop.local-4242",
            "a_b",
            "3f2a9c1d0b7e",
            &longest,
        ] {
            assert_eq!(parse_instance(good).as_deref(), Ok(good));
        }
        // Blanks around it are no part of it (a line end included): what is left is safe.
        assert_eq!(parse_instance(" w1\n").as_deref(), Ok("w1"));
        assert_eq!(parse_instance("  ").as_deref(), Ok(""));
        let too_long = "x".repeat(MAX_INSTANCE_LEN + 1);
        for bad in [
            "w1\nnugget",
            "w1\rw2",
            "w1\x1b[2J",
            "w 1",
            "w1,instance=x",
            "w1=x",
            "crème",
            &too_long,
        ] {
            assert!(parse_instance(bad).is_err(), "{bad:?}");
        }

        // From the environment or typed, the error is one line that names the setting and
        // shows the value escaped.
        let rule = "an instance name is 1 to 80 letters, digits, '.', '_' or '-' (it tags the \
                    stats in InfluxDB and the batches' headers); this one holds a control \
                    character, '\\n'";
        let error = retold(
            &["x", "--instance", "w1\nnugget"],
            &["x"],
            &[("INSTANCE", "w1\nnugget")],
        );
        let text = error.to_string();
        assert_eq!(
            text.lines().next(),
            Some(
                format!(
                    "error: invalid value 'w1\\nnugget' for INSTANCE (--instance <INSTANCE>): \
                     {rule}"
                )
                .as_str()
            ),
            "{text}"
        );
        assert_eq!(error.exit_code(), 2);
        let typed = ["x", "--instance", "w1\nnugget"];
        let error = retold(&typed, &typed, &[]);
        assert!(
            error
                .to_string()
                .starts_with("error: invalid value 'w1\\nnugget' for '--instance <INSTANCE>': "),
            "{error}"
        );
    }

    #[test]
    fn the_default_instance_is_always_a_valid_name() {
        assert_eq!(default_instance("odd host\n", 7), "odd-host--7");
        let long = "h".repeat(100);
        let name = default_instance(&long, 4_194_304);
        assert_eq!(name, format!("{}-4194304", "h".repeat(64)));
        assert_eq!(parse_instance(&name).as_deref(), Ok(name.as_str()));
    }
}
