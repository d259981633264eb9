//! `chocominer status`: one table of the stages from `chocominer_status` (the figures and the
//! bottleneck rule the dashboard shows too), with the hashers and workers answering `$SRV.PING`
//! counted alongside, which tells a replica that stopped writing stats from one that is gone.
//! Discovery mode leaves out the verdict and whatever gives it away ([`StatusArgs::discovery`]).

use std::time::Duration;

use async_nats::Client;
use chocominer_influx::{self as influx, InfluxArgs, QueryError};
use chocominer_model::Stage;
use chocominer_process::{NatsArgs, Shutdown};
use chocominer_status::lesson::{self, Counts, Step};
use chocominer_status::{
    self, LOOKBACK, Snapshot, StageFigures, StatsPoint, Verdict, WINDOW_SECONDS, bottleneck,
};
use serde::Serialize;

use crate::census;
use crate::clock;
use crate::human;
use crate::output;
use crate::paint::Paint;

/// How often `--watch` refreshes.
const REFRESH: Duration = Duration::from_secs(1);
/// Clears a terminal and puts the cursor top left.
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// `status --help`: what the figures are, then the bottleneck rule.
pub fn long_about() -> String {
    format!(
        "One table of the stages from the last {WINDOW_SECONDS} complete seconds of the stats in \
         InfluxDB: instances alive (a point in the last 3 s; for hasher and worker, checked \
         against the replicas answering $SRV.PING on NATS), rate per second (rng: numbers, \
         hasher and worker: hashes), busy share (hasher, worker), batches in flight and the window \
         (rng, hasher), numbers lost per second, nuggets per second, and the bottleneck.\n\n{}",
        bottleneck::RULE
    )
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Refresh every second until Ctrl-C (the screen is cleared only on a terminal).
    #[arg(long, env = "CHOCOMINER_WATCH", value_parser = clap::builder::FalseyValueParser::new())]
    pub watch: bool,
    /// Print the figures as one JSON object per line (one per refresh with --watch).
    #[arg(long, env = "CHOCOMINER_JSON", value_parser = clap::builder::FalseyValueParser::new())]
    pub json: bool,
    /// Discovery mode: show the figures but not the bottleneck nor what gives it away (the
    /// class finds it by probing each stage with `chocominer ping`).
    #[arg(
        long,
        env = lesson::DISCOVERY_ENV,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub discovery: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub influx: InfluxArgs,
}

/// One look at the pipeline; also what `--json` prints.
#[derive(Debug, Serialize)]
struct Status {
    /// When it was taken.
    #[serde(serialize_with = "clock::as_rfc3339")]
    time: i64,
    /// End of the seconds the figures cover (RFC 3339); null when nothing runs.
    up_to: Option<String>,
    window_seconds: i64,
    /// Whether any instance is alive.
    running: bool,
    stages: Snapshot,
    /// The stage holding the others back, if the rule names one; null in discovery mode.
    bottleneck: Option<&'static str>,
    /// Why; null in discovery mode.
    reason: Option<String>,
    /// The verdict in one sentence; in discovery mode, what to do to find it.
    summary: String,
    /// Whether the bottleneck is left for the class to find.
    discovery: bool,
    /// Where the running stack stands in the scaling lesson, and what to try next.
    lesson: Step,
    /// The verdict shown: [`Verdict::NoneSaturated`] stands for a hidden one.
    #[serde(skip)]
    verdict: Verdict,
}

/// What discovery mode says instead of the verdict.
pub const PROBE_EACH: &str =
    "which stage holds the others back? Probe each one: chocominer ping rng|hasher|worker";

pub async fn run(args: StatusArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let reader = influx::Client::new(&args.influx)?;
    // Both at once, so whichever is unreachable is reported without waiting for the other.
    let (client, _) = tokio::try_join!(
        crate::nats::connect(&args.nats, "chocominer status", &shutdown),
        recent(&reader)
    )?;
    let Some(client) = client else {
        return Ok(());
    };
    let paint = Paint::for_stdout();
    // The first tick is immediate, then one a second.
    let mut ticks = tokio::time::interval(REFRESH);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 0u64.. {
        let status = tokio::select! {
            status = async {
                ticks.tick().await;
                look(&client, &reader, args.discovery).await
            } => status,
            _ = shutdown.triggered() => break,
        };
        let text = match status {
            // What InfluxDB holds (the instances' names) is anyone's text: shown escaped.
            Ok(status) if args.json => output::json_line(&status)?,
            Ok(status) => render(&status, &reader, paint),
            Err(e) if !args.watch => return Err(e),
            // Watching goes on through an outage: say so, and look again next second. With
            // --json, stdout stays JSON only.
            Err(e) if args.json => {
                eprintln!("chocominer: {}", output::escape(&format!("{e:#}")));
                continue;
            }
            Err(e) => format!("{}\n", paint.alarm(&output::escape(&format!("{e:#}")))),
        };
        let separator = match (args.watch, args.json, round) {
            (true, false, _) if paint.is_terminal() => CLEAR_SCREEN,
            (true, false, 1..) => "\n",
            _ => "",
        };
        output::print(&format!("{separator}{text}"))?;
        if !args.watch {
            break;
        }
    }
    Ok(())
}

/// The stages' recent stats points; an unreachable InfluxDB says how to start the local stack
/// or point at another one.
pub(crate) async fn recent(reader: &influx::Client) -> anyhow::Result<Vec<StatsPoint>> {
    chocominer_status::read_recent(reader, LOOKBACK)
        .await
        .map_err(|e| match e {
            QueryError::Unreachable { url, reason } => anyhow::anyhow!(
                "cannot reach InfluxDB at {url} ({reason}): {}",
                crate::stack_down_hint("influxd", "--influx-url", "INFLUX_URL")
            ),
            other => other.into(),
        })
}

/// Reads the stats and pings the services, all at once; `discovery` leaves the verdict out.
async fn look(client: &Client, reader: &influx::Client, discovery: bool) -> anyhow::Result<Status> {
    let (points, hashers, workers) = tokio::join!(
        recent(reader),
        census::ask(client, "PING", Stage::Hasher),
        census::ask(client, "PING", Stage::Worker),
    );
    let now = chocominer_process::now_ns();
    let mut stages = Snapshot::from_points(&points?, now);
    stages.hasher.nats_replicas = Some(hashers?.len());
    stages.worker.nats_replicas = Some(workers?.len());
    Ok(judge(now, stages, discovery))
}

/// The status of `stages` seen at `now`: the verdict, unless `discovery` hides it.
fn judge(now: i64, stages: Snapshot, discovery: bool) -> Status {
    let (verdict, summary) = match bottleneck::find(&stages) {
        // Nothing to find while nothing runs: said as it is. "No stage is saturated" is an
        // answer too: hidden as well.
        verdict if discovery && verdict != Verdict::NothingRuns => {
            (Verdict::NoneSaturated, PROBE_EACH.to_owned())
        }
        verdict => (verdict.clone(), verdict.sentence()),
    };
    Status {
        time: now,
        up_to: stages.up_to_ns.map(clock::rfc3339),
        window_seconds: WINDOW_SECONDS,
        running: stages.anything_runs(),
        bottleneck: verdict.stage().map(Stage::name),
        reason: verdict.reason().map(str::to_owned),
        summary,
        discovery,
        lesson: lesson::step(Counts::of(&stages), discovery),
        verdict,
        stages,
    }
}

/// `lesson step 2/5: More workers — next: just scale worker 10`; where the lesson has no
/// command to give, what to do instead.
fn lesson_line(step: &Step) -> String {
    let at = match step.number {
        0 => "lesson".to_owned(),
        n => format!("lesson step {n}/{}", step.of),
    };
    match &step.next {
        // The same step on Compose and Kubernetes, for a class that runs the stack there.
        Some(c) => format!(
            "{at}: {} — next: {}\n  (compose: {}; kubernetes: {})",
            step.title, c.just, c.compose, c.kubectl
        ),
        None => format!("{at}: {} — next: {}", step.title, step.why_next),
    }
}

const HEADINGS: [&str; 8] = [
    "stage",
    "alive",
    "rate",
    "limit",
    "busy",
    "in flight",
    "lost/s",
    "nuggets/s",
];

/// The table, then the verdict.
fn render(status: &Status, reader: &influx::Client, paint: Paint) -> String {
    let stages = &status.stages;
    let nats_sees_some = [&stages.hasher, &stages.worker]
        .iter()
        .any(|s| s.nats_replicas.unwrap_or(0) > 0);
    if !status.running && !nats_sees_some {
        return format!(
            "{} (InfluxDB {}, database {})\n{}\n",
            status.summary,
            reader.url(),
            reader.db(),
            lesson_line(&status.lesson)
        );
    }
    let mut rows = vec![HEADINGS.map(str::to_owned)];
    rows.extend(Stage::ALL.map(|stage| cells(stage, stages.stage(stage))));
    let widths: Vec<usize> = (0..HEADINGS.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let up_to = stages.up_to_ns.map_or("-".to_owned(), clock::second_of_day);
    let mut text = paint.dim(&format!("last {WINDOW_SECONDS} s up to {up_to}\n"));
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        let line = line.join("  ");
        let is_bottleneck = i > 0 && status.verdict.stage() == Some(Stage::ALL[i - 1]);
        text += &match (i, is_bottleneck) {
            (0, _) => paint.strong(line.trim_end()),
            (_, true) => paint.alarm(&format!("{line}  ← bottleneck")),
            _ => line.trim_end().to_owned(),
        };
        text += "\n";
    }
    if let Some(forged) = stages.worker.forged.filter(|&f| f > 0.0) {
        text += &paint.alarm(&format!(
            "worker refused {}/s forged nuggets (digest prefixes that are not the start of their \
             number's hash: someone publishes on the digests subject)",
            human::rate(forged)
        ));
        text += "\n";
    }
    let mut summary = status.summary.clone();
    if !status.running {
        summary += ", yet replicas answer on NATS: are their stats late, or written elsewhere?";
    }
    text + &format!("\n{summary}\n{}\n", lesson_line(&status.lesson))
}

/// One row of the table; `-` where a figure does not apply to the stage. Rates in the
/// dashboard's units (`13.0 M/s`); `--json` keeps the raw numbers.
fn cells(stage: Stage, f: &StageFigures) -> [String; 8] {
    let dash = || "-".to_owned();
    let alive = match f.nats_replicas {
        Some(on_nats) if on_nats != f.alive => format!("{} (NATS: {on_nats})", f.alive),
        _ => f.alive.to_string(),
    };
    let limit = match f.rate_limit {
        Some(limit) if limit > 0.0 => format!("{}/s", human::rate(limit)),
        Some(_) => "none".to_owned(),
        None => dash(),
    };
    let in_flight = match (f.in_flight, f.window) {
        (Some(in_flight), Some(window)) => format!("{in_flight:.0}/{window:.0}"),
        _ => dash(),
    };
    let per_second = |v: Option<f64>| v.map_or_else(dash, human::rate);
    [
        stage.name().to_owned(),
        alive,
        format!("{}/s", human::rate(f.rate)),
        limit,
        f.busy.map_or_else(dash, bottleneck::percent),
        in_flight,
        per_second(f.lost),
        per_second(f.nuggets),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_full_speed_row_reads_in_the_dashboards_units() {
        let rng = StageFigures {
            alive: 1,
            rate: 13_043_200.0,
            rate_limit: Some(0.0),
            in_flight: Some(16.0),
            window: Some(16.0),
            lost: Some(32_000.0),
            ..StageFigures::default()
        };
        assert_eq!(
            cells(Stage::Rng, &rng),
            ["rng", "1", "13.0 M/s", "none", "-", "16/16", "32.0 k", "-"].map(str::to_owned)
        );
        let worker = StageFigures {
            alive: 1,
            rate: 9.8,
            nuggets: Some(0.2),
            ..StageFigures::default()
        };
        assert_eq!(
            cells(Stage::Worker, &worker),
            ["worker", "1", "9.8/s", "-", "-", "-", "-", "0.2"].map(str::to_owned)
        );
        let capped = StageFigures {
            rate_limit: Some(100.0),
            ..rng
        };
        assert_eq!(cells(Stage::Rng, &capped)[3], "100/s");
    }

    /// One of each stage, the hasher busy 95 %: the rule names it.
    fn saturated_hasher() -> Snapshot {
        let one = |rate: f64| StageFigures {
            alive: 1,
            rate,
            ..StageFigures::default()
        };
        Snapshot {
            up_to_ns: Some(0),
            rng: StageFigures {
                rate_limit: Some(100.0),
                ..one(20.0)
            },
            hasher: StageFigures {
                busy: Some(0.95),
                ..one(19.0)
            },
            worker: one(19.0),
        }
    }

    #[test]
    fn discovery_keeps_the_figures_and_leaves_out_the_verdict() {
        let open = judge(0, saturated_hasher(), false);
        assert_eq!(open.bottleneck, Some("hasher"));
        assert_eq!(
            open.reason.as_deref(),
            Some("busy 95 %: more hashers would hash more")
        );
        let hidden = judge(0, saturated_hasher(), true);
        assert_eq!((hidden.bottleneck, &hidden.reason), (None, &None));
        assert_eq!(hidden.verdict, Verdict::NoneSaturated);
        assert_eq!(hidden.summary, PROBE_EACH);
        assert_eq!(hidden.stages, saturated_hasher());
        let json = serde_json::to_value(&hidden).unwrap();
        assert_eq!(json["stages"]["hasher"]["busy"], 0.95);
        assert_eq!(
            (&json["bottleneck"], &json["reason"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(json["discovery"], true);
        assert_eq!(json["lesson"]["number"], 1);
        let text = serde_json::to_string(&json).unwrap();
        assert!(
            !text.contains("more hashers") && !text.contains("bottleneck: "),
            "{text}"
        );
        // Nothing running is no answer to hide.
        let idle = judge(0, Snapshot::default(), true);
        assert_eq!(idle.verdict, Verdict::NothingRuns);
        assert!(idle.summary.starts_with("nothing runs"), "{}", idle.summary);
    }

    #[test]
    fn the_lesson_line_gives_the_next_command_or_what_to_do() {
        let at = |rng, hasher, worker, discovery| {
            let counts = Counts {
                rng,
                hasher,
                worker,
            };
            lesson_line(&lesson::step(counts, discovery))
        };
        assert_eq!(
            at(1, 1, 1, false),
            "lesson step 1/5: One of each — next: just scale worker 2\n  (compose: docker \
             compose up -d --scale worker=2; kubernetes: kubectl -n chocominer scale \
             deployment/worker --replicas=2)"
        );
        assert!(
            at(1, 1, 10, false)
                .starts_with("lesson step 3/5: A plateau — next: just scale rng 3\n"),
        );
        let hidden = at(1, 1, 10, true);
        assert!(
            hidden.starts_with("lesson step 3/5: A plateau — next: "),
            "{hidden}"
        );
        assert!(
            !hidden.contains("rng") && !hidden.contains("hasher"),
            "{hidden}"
        );
        assert!(at(0, 0, 0, true).starts_with("lesson: "));
    }

    #[test]
    fn the_discovery_flag_reads_the_lessons_variable() {
        use clap::Args;
        let command = StatusArgs::augment_args(clap::Command::new("status"));
        let flag = command
            .get_arguments()
            .find(|arg| arg.get_id() == "discovery")
            .expect("a --discovery flag");
        assert_eq!(
            flag.get_env().and_then(|v| v.to_str()),
            Some(lesson::DISCOVERY_ENV)
        );
    }
}
