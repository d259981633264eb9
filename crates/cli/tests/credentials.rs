//! Credentials are shown nowhere: not by `--help` (which shows the variables' values), not in a
//! stage's logs, not in `chocominer`'s messages. Those written in INFLUX_URL
//! (`scheme://user:password@host`) are used; in NATS_URL they are refused (NATS_USER and
//! NATS_PASSWORD or NATS_PASSWORD_FILE give them).

mod common;

use std::process::Stdio;

use common::SOON;
use testkit::{NatsServer, free_port};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const NATS_PASSWORD: &str = "nats-s3cret";
const INFLUX_PASSWORD: &str = "influx-s3cret";

/// A NATS URL with credentials in it, as nobody should write one.
fn nats_url_with_password(port: u16) -> String {
    format!("nats://alice:{NATS_PASSWORD}@127.0.0.1:{port}")
}

fn nats_url(port: u16) -> String {
    format!("nats://127.0.0.1:{port}")
}

fn influx_url(port: u16) -> String {
    format!("http://bob:{INFLUX_PASSWORD}@127.0.0.1:{port}")
}

/// `bin args` with `vars`, its output piped, killed when dropped.
fn command(bin: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = common::command(bin, args);
    cmd.envs(vars.iter().copied());
    cmd
}

/// Reads `cmd`'s stderr until a line holds `wanted` (within [`SOON`]): all it said until then.
async fn stderr_until(mut cmd: Command, wanted: &str) -> String {
    let mut child = cmd.spawn().expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = String::new();
    let found = tokio::time::timeout(SOON, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            said += &line;
            said.push('\n');
            if line.contains(wanted) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        found == Ok(true),
        "no line with {wanted:?} within {SOON:?}:\n{said}"
    );
    said
}

fn assert_hidden(said: &str) {
    assert!(
        !said.contains(NATS_PASSWORD) && !said.contains(INFLUX_PASSWORD),
        "a password is shown:\n{said}"
    );
}

#[test]
fn help_shows_neither_url_from_the_environment() {
    let vars = [
        ("NATS_URL", nats_url_with_password(4222)),
        ("NATS_PASSWORD", NATS_PASSWORD.to_owned()),
        ("INFLUX_URL", influx_url(8086)),
    ];
    let chocominer = std::path::PathBuf::from(env!("CARGO_BIN_EXE_chocominer"));
    for (bin, args) in [
        (chocominer.clone(), &["sub", "--help"][..]),
        (chocominer, &["status", "--help"]),
        (testkit::cargo_bin("rng"), &["--help"]),
    ] {
        let output = std::process::Command::new(&bin)
            .args(args)
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{help}");
        assert_hidden(&help);
        assert!(help.contains("[env: NATS_URL]"), "{help}");
        if args[0] != "sub" {
            assert!(help.contains("[env: INFLUX_URL]"), "{help}");
        }
    }
}

/// A stage waiting for NATS, then one that cannot write its stats: each says where, without
/// the credentials.
#[tokio::test]
async fn a_stage_logs_its_urls_without_their_credentials() {
    let rng = testkit::cargo_bin_async("rng").await;
    let nowhere = free_port();
    let nats_nowhere = nats_url(nowhere);
    let said = stderr_until(
        command(
            &rng,
            &[],
            &[
                ("NATS_URL", &nats_nowhere),
                ("NATS_USER", "alice"),
                ("NATS_PASSWORD", NATS_PASSWORD),
                ("INFLUX_URL", ""),
            ],
        ),
        "waiting for NATS",
    )
    .await;
    assert_hidden(&said);
    assert!(said.contains(&nats_nowhere), "{said}");

    // The wrong password: one line naming the user, not the password, and an exit.
    let nats = NatsServer::start().await;
    let nats_url = nats_url(nats.port());
    let output = command(
        &rng,
        &[],
        &[
            ("NATS_URL", nats_url.as_str()),
            ("NATS_USER", "rng"),
            ("NATS_PASSWORD", NATS_PASSWORD),
            ("INFLUX_URL", ""),
        ],
    )
    .output()
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert_hidden(&said);
    assert!(
        said.contains("refused to let us in as user \"rng\""),
        "{said}"
    );

    // The right one: the stage runs and writes stats, to an InfluxDB that is not there.
    let password_file = nats.password_file("rng");
    let influx_nowhere = influx_url(nowhere);
    let said = stderr_until(
        command(
            &rng,
            &["--rate", "10"],
            &[
                ("NATS_URL", nats_url.as_str()),
                ("NATS_USER", "rng"),
                ("NATS_PASSWORD_FILE", password_file.to_str().unwrap()),
                ("INFLUX_URL", &influx_nowhere),
            ],
        ),
        "cannot write stats to InfluxDB",
    )
    .await;
    assert_hidden(&said);
    assert!(!said.contains(nats.password("rng")), "{said}");
    assert!(
        said.contains(&format!("http://***@127.0.0.1:{nowhere}")),
        "{said}"
    );
}

/// `chocominer` names the server it cannot reach, without the credentials.
#[tokio::test]
async fn chocominer_names_unreachable_servers_without_their_credentials() {
    let chocominer = std::path::Path::new(env!("CARGO_BIN_EXE_chocominer"));
    let nats = NatsServer::start().await;
    let nowhere = free_port();
    let password_file = nats.password_file("cli");
    let output = command(
        chocominer,
        &["status"],
        &[
            ("NATS_URL", nats_url(nats.port()).as_str()),
            ("NATS_USER", "cli"),
            ("NATS_PASSWORD_FILE", password_file.to_str().unwrap()),
            ("INFLUX_URL", &influx_url(nowhere)),
        ],
    )
    .output()
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert_hidden(&said);
    assert!(
        said.starts_with(&format!(
            "chocominer: cannot reach InfluxDB at http://***@127.0.0.1:{nowhere} ("
        )),
        "{said}"
    );

    let vars = [
        ("NATS_URL", nats_url(nowhere)),
        ("NATS_USER", "cli".into()),
        ("NATS_PASSWORD", NATS_PASSWORD.into()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let output = command(chocominer, &["sub"], &vars).output().await.unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert_hidden(&said);
    assert!(
        said.starts_with(&format!(
            "chocominer: cannot reach NATS at nats://127.0.0.1:{nowhere} ("
        )),
        "{said}"
    );
}

/// A URL refused at start is named without its credentials too; a NATS URL is refused for
/// holding credentials at all.
#[test]
fn an_invalid_url_is_refused_without_showing_its_credentials() {
    let rng = testkit::cargo_bin("rng");
    for (var, value, shown) in [
        (
            "NATS_URL",
            nats_url_with_password(4222),
            "'nats://***@127.0.0.1:4222' for NATS_URL (--nats-url <NATS_URL>): \
             nats://127.0.0.1:4222: credentials written in the URL are not used; give them as \
             NATS_USER and NATS_PASSWORD or NATS_PASSWORD_FILE",
        ),
        (
            "NATS_URL",
            format!("nats://alice:{NATS_PASSWORD}@127.0.0.1:99999"),
            "'nats://***@127.0.0.1:99999' for NATS_URL (--nats-url <NATS_URL>): ",
        ),
        (
            "INFLUX_URL",
            format!("ftp://bob:{INFLUX_PASSWORD}@127.0.0.1:8086"),
            "'ftp://***@127.0.0.1:8086' for INFLUX_URL (--influx-url <INFLUX_URL>): ",
        ),
    ] {
        let output = std::process::Command::new(&rng)
            .env(var, &value)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{said}");
        assert_hidden(&said);
        assert!(
            said.starts_with(&format!("error: invalid value {shown}")),
            "{said}"
        );
    }
}
