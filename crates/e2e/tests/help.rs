//! Each stage's `--help` names the defaults of both profiles; the profiles in
//! `chocominer_pipeline::Profile` are where those defaults live. This checks the help against
//! them, so a changed default cannot leave a stale figure in front of the user (it once said
//! demo 100 for rng's rate, 10, and for the hasher's delay, 50).

use chocominer_codec::NumberEncoding;
use chocominer_pipeline::Profile;
use clap::CommandFactory;

/// The help of `--long` in `command`, on one line.
fn help(command: &clap::Command, long: &str) -> String {
    let arg = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .unwrap_or_else(|| panic!("{} has no --{long}", command.get_name()));
    let text = arg
        .get_long_help()
        .or(arg.get_help())
        .expect("every flag has help");
    text.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn assert_names(command: &clap::Command, long: &str, wanted: &str) {
    let help = help(command, long);
    assert!(
        help.contains(wanted),
        "{} --{long}: the help says {help:?}, the profiles want {wanted:?}",
        command.get_name()
    );
}

#[test]
fn every_stage_help_names_the_profiles_defaults() {
    let demo = Profile::Demo.defaults();
    let full = Profile::Full.defaults();
    let ms = |d: std::time::Duration| d.as_millis();

    let rng = rng::Config::command();
    assert_names(
        &rng,
        "rate",
        &format!("demo {}, full {}]", demo.rng_rate, full.rng_rate),
    );
    assert_names(
        &rng,
        "batch",
        &format!("demo {}, full {},", demo.rng_batch, full.rng_batch),
    );
    assert_eq!(
        (demo.rng_numbers, full.rng_numbers),
        (NumberEncoding::Raw, NumberEncoding::Seeded)
    );
    assert_names(&rng, "numbers", "demo raw, full seeded]");
    assert_names(
        &rng,
        "in-flight",
        &format!(
            "demo {}, full {}, or {} with raw numbers]",
            demo.rng_in_flight_for(demo.rng_numbers),
            full.rng_in_flight,
            full.rng_in_flight_raw
        ),
    );
    assert_names(
        &rng,
        "ack-timeout-ms",
        &format!(
            "demo {}, full {}]",
            ms(demo.ack_timeout),
            ms(full.ack_timeout)
        ),
    );

    let hasher = hasher::Config::command();
    assert_names(
        &hasher,
        "delay-ms",
        &format!(
            "demo {}, full {}]",
            ms(demo.hasher_delay),
            ms(full.hasher_delay)
        ),
    );
    assert_names(
        &hasher,
        "concurrency",
        &format!(
            "demo {}, full twice the number of cores]",
            demo.hasher_concurrency
        ),
    );
    assert_names(
        &hasher,
        "in-flight",
        &format!(
            "demo {}, full {}]",
            demo.hasher_in_flight, full.hasher_in_flight
        ),
    );
    assert_eq!(
        demo.hasher_queue, full.hasher_queue,
        "the help gives one queue default"
    );
    assert_names(
        &hasher,
        "queue",
        &format!("[default: {}]", demo.hasher_queue),
    );

    let worker = worker::Config::command();
    assert_names(
        &worker,
        "difficulty",
        &format!("demo {}, full {}]", demo.difficulty, full.difficulty),
    );
    assert_names(
        &worker,
        "delay-ms",
        &format!(
            "demo {}, full {}]",
            ms(demo.worker_delay),
            ms(full.worker_delay)
        ),
    );
}
