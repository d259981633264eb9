//! `chocominer sub`. Its subscription is in no queue group, so it takes no work away; one side
//! effect: while it watches a subject, a sender to a stage with no replica left finds a
//! subscriber there, so it waits for its ack timeout, not "no responders".

use chocominer_model::Subjects;
use chocominer_process::NatsArgs;
use chocominer_process::Shutdown;
use futures::StreamExt;

use crate::output;
use crate::paint::Paint;
use crate::sighting::Sighting;

#[derive(Debug, clap::Args)]
pub struct SubArgs {
    /// What to watch: numbers (rng → hasher), digests (hasher → worker), nuggets, or all.
    #[arg(value_enum, default_value_t = Watch::All)]
    pub what: Watch,
    /// Numbers shown per batch, with their digest prefixes on digests (seeded batches are
    /// expanded to show them).
    #[arg(long, env = "CHOCOMINER_SHOW", default_value_t = 3)]
    pub show: usize,
    /// Print one JSON object per message and line, for scripts.
    #[arg(long, env = "CHOCOMINER_JSON", value_parser = clap::builder::FalseyValueParser::new())]
    pub json: bool,
    /// Exit after this many messages [default: watch until Ctrl-C].
    #[arg(long, env = "CHOCOMINER_COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// The subjects `sub` can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Watch {
    /// `<prefix>.numbers`: batches of random numbers, rng → hasher.
    Numbers,
    /// `<prefix>.digests`: numbers with the first 4 bytes (8 hex digits) of their SHA-256
    /// digests, all the workers need to judge them, hasher → worker.
    Digests,
    /// `<prefix>.nuggets`: each nugget a worker found.
    Nuggets,
    /// All three (`<prefix>.*`), in the order the server sent them.
    All,
}

impl Watch {
    /// The subject to subscribe to. `all` is one wildcard subscription rather than three, so
    /// that messages show in the order the server sent them.
    fn subject(self, prefix: &str) -> String {
        let subjects = Subjects::new(prefix);
        match self {
            Watch::Numbers => subjects.numbers,
            Watch::Digests => subjects.digests,
            Watch::Nuggets => subjects.nuggets,
            Watch::All => format!("{prefix}.*"),
        }
    }
}

pub async fn run(args: SubArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let Some(client) = crate::nats::connect(&args.nats, "chocominer sub", &shutdown).await? else {
        return Ok(());
    };
    let prefix = &args.nats.subject_prefix;
    let subject = args.what.subject(prefix);
    let mut messages = client.subscribe(subject.clone()).await?;
    // Once a message to itself has come back, the server has the subscription: say we are
    // ready. (A flush only writes the subscription out; a message published meanwhile by
    // another connection could still reach the server first.)
    chocominer_process::round_trip(&client).await?;
    eprintln!("watching {subject} (Ctrl-C to stop)");

    // Bodies are checked against the limit the stages use, so what does not decode here is
    // what they would refuse.
    let max_payload = client.server_info().max_payload;
    let paint = Paint::for_stdout();
    let subjects = Subjects::new(prefix);
    let mut seen = 0u64;
    while args.count.is_none_or(|count| seen < count) {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = shutdown.triggered() => break,
        };
        let Some(message) = message else {
            anyhow::bail!("the NATS connection closed");
        };
        let sighting = Sighting::read(&message, &subjects, max_payload, args.show);
        let text = if args.json {
            output::json_line(&sighting)?
        } else {
            sighting.render(paint)
        };
        output::print(&text)?;
        seen += 1;
    }
    Ok(())
}
