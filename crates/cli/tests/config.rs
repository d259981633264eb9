//! An invalid value set in the environment is reported under the variable's name, by the
//! `chocominer` command and by the stages (one `config::parse` for all), with clap's exit code.

use std::process::{Command, Output};

/// Runs `bin args` with `vars` set, its stdin closed, and returns how it ended.
fn run(bin: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(bin)
        .args(args)
        .envs(vars.iter().copied())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn chocominer_names_the_variable_that_holds_an_invalid_value() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_chocominer"));
    let output = run(bin, &["sub"], &[("CHOCOMINER_COUNT", "abc")]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.starts_with("error: invalid value 'abc' for CHOCOMINER_COUNT (--count <COUNT>): "),
        "{text}"
    );

    // Typed on the command line, it is the flag's fault, as clap says.
    let output = run(bin, &["sub", "--count", "0"], &[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.starts_with("error: invalid value '0' for '--count <COUNT>': "),
        "{text}"
    );

    // --help still goes to stdout with success.
    let output = run(bin, &["status", "--help"], &[("CHOCOMINER_COUNT", "abc")]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("--watch"));
}

#[test]
fn a_stage_names_the_variable_that_holds_an_invalid_value() {
    let bin = testkit::cargo_bin("rng");
    let output = run(&bin, &[], &[("RNG_RATE", "abc")]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.starts_with(
            "error: invalid value 'abc' for RNG_RATE (--rate <RATE>): invalid float literal"
        ),
        "{text}"
    );
    let output = run(&bin, &[], &[("CHOCOMINER_PROFILE", "fast")]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.starts_with(
            "error: invalid value 'fast' for CHOCOMINER_PROFILE (--profile <PROFILE>)"
        ),
        "{text}"
    );
}

/// `INSTANCE=$'w1\nnugget'` would plant `nugget` points in InfluxDB (the line protocol library
/// leaves a line break in a tag raw): a stage refuses such a name at start, with one line that
/// names the setting and exit code 2, before it connects to anything.
#[test]
fn a_stage_refuses_an_instance_name_that_would_break_the_line_protocol() {
    use std::net::TcpListener;
    let listen = || {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    };
    let (nats, nats_port) = listen();
    let (influx, influx_port) = listen();
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let influx_url = format!("http://127.0.0.1:{influx_port}");
    let servers = [("NATS_URL", nats_url.as_str()), ("INFLUX_URL", &influx_url)];
    let bin = testkit::cargo_bin("worker");

    let mut vars = servers.to_vec();
    vars.push(("INSTANCE", "w1\nnugget"));
    let output = run(&bin, &[], &vars);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            "error: invalid value 'w1\\nnugget' for INSTANCE (--instance <INSTANCE>): an \
             instance name is 1 to 80 letters, digits, '.', '_' or '-'"
        ) && first.ends_with("this one holds a control character, '\\n'"),
        "{text}"
    );

    let output = run(&bin, &["--instance", "w1\x1b]0;x\x07"], &servers);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.starts_with(
            "error: invalid value 'w1\\u{1b}]0;x\\u{7}' for '--instance <INSTANCE>': "
        ),
        "{text}"
    );

    for (listener, what) in [(nats, "NATS"), (influx, "InfluxDB")] {
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the stage connected to {what} before refusing: {other:?}"),
        }
    }
}

/// Runs `bin` with `vars`, but gives up (and fails) after 15 s: a setting that is not refused
/// at start would have the stage wait for servers that are not there.
fn run_bounded(bin: &std::path::Path, vars: &[(&str, &str)]) -> Output {
    let mut child = Command::new(bin)
        .env("INFLUX_URL", "")
        .envs(vars.iter().copied())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("{} with {vars:?} still runs after 15 s", bin.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_stage_refuses_bad_settings_at_start_naming_them() {
    let bin = testkit::cargo_bin("rng");
    let nobody = testkit::free_port();
    let up = format!("nats://127.0.0.1:{nobody}");
    let cases: Vec<(&str, String, &str)> = vec![
        ("RNG_RATE", "-1".into(), "0 or more"),
        ("RNG_RATE", "NaN".into(), "0 or more"),
        ("RNG_RATE", "inf".into(), "0 or more"),
        ("NATS_URL", "nats://127.0.0.1:99999".into(), "invalid port"),
        ("NATS_URL", "http://127.0.0.1:4222".into(), "invalid scheme"),
        // One bad URL in a list is enough: the good one before it does not hide it.
        (
            "NATS_URL",
            format!("{up},nats://127.0.0.1:99999"),
            "nats://127.0.0.1:99999: NATS server URL is invalid",
        ),
        (
            "INFLUX_URL",
            "ftp://influx:8086".into(),
            "expected http://host:port",
        ),
        ("INFLUX_URL", "not a url".into(), "not a URL"),
        (
            "NATS_CREDS",
            "/nonexistent/chocominer.creds".into(),
            "cannot read",
        ),
        ("NATS_CA", "/nonexistent/ca.pem".into(), "cannot read"),
        (
            "NATS_PASSWORD_FILE",
            "/nonexistent/nats.password".into(),
            "cannot read",
        ),
        (
            "INFLUX_PASSWORD_FILE",
            "/nonexistent/influx-writer.password".into(),
            "cannot read",
        ),
        ("RNG_BATCH", "0".into(), "not in 1.."),
        ("RNG_BATCH", "1000000000000".into(), "not in 1.."),
    ];
    for (var, value, why) in cases {
        let mut vars = vec![(var, value.as_str())];
        if var != "NATS_URL" {
            vars.push(("NATS_URL", up.as_str()));
        }
        let output = run_bounded(&bin, &vars);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{var}={value}: {text}");
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("error: invalid value '{value}' for {var} (")),
            "{var}={value}: {text}"
        );
        assert!(
            first.contains(why),
            "{var}={value}: wanted {why:?} in {first}"
        );
    }
}

/// A client certificate without its key is refused at start, naming both settings.
#[test]
fn a_stage_refuses_a_client_certificate_without_its_key() {
    let bin = testkit::cargo_bin("rng");
    let up = format!("nats://127.0.0.1:{}", testkit::free_port());
    let this_file = file!();
    let cert = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(this_file);
    let cert = cert.to_str().unwrap();
    let output = run_bounded(&bin, &[("NATS_URL", &up), ("NATS_CERT", cert)]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("--nats-key"), "{text}");
}

/// A batch whose digest batch the server's max payload cannot carry is refused once rng has
/// connected and learnt the limit: one line naming RNG_BATCH and the limit, exit code 2, and
/// nothing sent.
#[test]
fn rng_refuses_a_batch_the_server_cannot_carry() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let nats = runtime.block_on(testkit::NatsServer::start());
    let bin = testkit::cargo_bin("rng");
    let url = nats.url();
    let password_file = nats.password_file("rng");
    let vars = [
        ("NATS_URL", url.as_str()),
        ("NATS_USER", "rng"),
        ("NATS_PASSWORD_FILE", password_file.to_str().unwrap()),
        ("RNG_BATCH", "100000"),
    ];
    let output = run_bounded(&bin, &vars);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("invalid value for RNG_BATCH"))
        .unwrap_or_else(|| panic!("no line names RNG_BATCH: {text}"));
    // (1 MiB - 1 KiB of headroom) / 36 bytes a number (32 of it, 4 of its digest prefix).
    assert!(
        line.contains("max payload of 1048576 bytes; at most 29098 fit"),
        "{line}"
    );
    let sent = runtime.block_on(nats.messages_in());
    assert_eq!(sent, 0, "rng published before refusing");
}
