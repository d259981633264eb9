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
