//! `chocominer`: the pipeline seen from the outside: `sub` prints the messages flowing between
//! the stages, `status` sums up the stages and names the bottleneck, `ping STAGE` probes one
//! stage as the lesson's `httping -c 3`. All only watch: they join no queue group. Their own
//! messages go to stderr, one line each.

mod census;
mod clock;
mod human;
mod nats;
mod output;
mod paint;
mod ping;
mod sighting;
mod status;
mod sub;

use std::process::ExitCode;

use chocominer_process::Shutdown;
use clap::Parser;

/// Text at the end of `--help`.
const AFTER_HELP: &str = "Every option can also be set by the environment variable shown with \
it. The library's logs are off; RUST_LOG (e.g. RUST_LOG=info) turns them on, on stderr.";

#[derive(Debug, Parser)]
#[command(
    name = "chocominer",
    version,
    about = "ChocoMiner from the outside: watch the pipeline's messages, probe its stages and find its bottleneck",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the messages on the pipeline's subjects as they flow, decoded
    ///
    /// A plain subscription: every batch still goes to exactly one replica of its stage, none
    /// is taken away. Each message shows its time, subject, batch id, count, sender and first
    /// numbers; on digests, each with its digest prefix, the first 8 hex digits of its SHA-256
    /// (`…`: the rest is not sent). Nuggets are highlighted, undecodable messages shown as such.
    #[command(after_help = AFTER_HELP)]
    Sub(sub::SubArgs),
    /// One table of the stages from their last seconds of stats, and the bottleneck
    #[command(long_about = status::long_about(), after_help = AFTER_HELP)]
    Status(status::StatusArgs),
    /// Probe one stage every second, like `httping -c 3`: its rate, how busy it is, how long an
    /// item takes
    #[command(long_about = ping::long_about(), after_help = AFTER_HELP)]
    Ping(ping::PingArgs),
}

/// What to do when a server is out of reach: the local stack (`just up`) serves the default
/// addresses; anywhere else, the flag or its variable points at the right server.
fn stack_down_hint(server: &str, flag: &str, var: &str) -> String {
    format!(
        "is the stack up? Start it with `just up`, or point {flag} / {var} at a running {server}"
    )
}

fn main() -> ExitCode {
    // Reads the local UTC offset while the process still has one thread (see `clock`).
    clock::init();
    let cli: Cli = chocominer_process::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        chocominer_process::init_telemetry();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chocominer: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let shutdown = Shutdown::on_signals();
        match cli.command {
            Command::Sub(args) => sub::run(args, shutdown).await,
            Command::Status(args) => status::run(args, shutdown).await,
            Command::Ping(args) => ping::run(args, shutdown).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever reads our output went away (`| head`): nothing left to say to anyone.
        Err(e) if output::is_closed(&e) => ExitCode::SUCCESS,
        // The error may quote what a server answered: escaped, like everything shown.
        Err(e) => {
            eprintln!("chocominer: {}", output::escape(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
