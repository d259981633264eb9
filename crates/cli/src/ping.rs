//! `chocominer ping STAGE`: the lesson's `httping -c 3`, for stages that serve no HTTP. A probe
//! on their work subjects would take work from their queue group, so each probe reads what the
//! stage publishes about itself instead: hasher and worker their replicas' `$SRV.STATS`
//! answers, rng its stats in InfluxDB. What each figure means: [`long_about`], docs/ping.md.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::Client;
use chocominer_influx::{self as influx, InfluxArgs};
use chocominer_model::Stage;
use chocominer_process::{NatsArgs, Shutdown};
use chocominer_status::bottleneck::percent;
use chocominer_status::figures::round;
use chocominer_status::{ALIVE_WITHIN_SECONDS, Snapshot};
use serde::Serialize;
use tokio::time::Instant;

use crate::census::{self, Answer};
use crate::clock;
use crate::human;
use crate::output;

/// Time between two probes, as httping's default.
const EVERY: Duration = Duration::from_secs(1);
/// How long after a whole second of the wall clock a service is probed: a replica takes its
/// busy share on whole seconds, so the hashes counted then cover the same second.
const AFTER_THE_SECOND: Duration = Duration::from_millis(50);

/// `ping --help`.
pub fn long_about() -> String {
    format!(
        "Probes one stage every second, COUNT times, like `httping -c COUNT` on a service of \
         the original ChocoMiner: one line per probe, then a summary of how many instances, \
         their rate, how busy they are and how long one item costs one of them.\n\n\
         hasher and worker: their replicas' answers to $SRV.STATS.<stage> (what `nats micro \
         stats <stage>` shows), compared with the probe before (a first probe, not printed, \
         sets the baseline). busy is a replica's own share of time spent hashing or, when it \
         publishes none (it takes one batch at a time, as the worker), its processing time / \
         time elapsed; a hash costs busy time / hashes.\n\n\
         rng (no NATS service: it only sends): its stats in InfluxDB, as `chocominer status` \
         shows them: numbers/s against its rate limit (the share used is how busy it is; at \
         its limit a number costs each instance 1/limit), and its batches in flight against \
         its window.\n\n\
         A stage that answers nothing (no replica within {} ms, no rng point in the last {} s) \
         makes a probe without figures; none answered at all: exit status 1. More: docs/ping.md.",
        census::LISTEN.as_millis(),
        ALIVE_WITHIN_SECONDS
    )
}

#[derive(Debug, clap::Args)]
pub struct PingArgs {
    /// The stage to probe.
    #[arg(value_enum)]
    pub stage: Target,
    /// Probes to make, one a second (httping's -c).
    #[arg(
        short = 'c',
        long,
        env = "CHOCOMINER_PING_COUNT",
        default_value_t = 3,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub count: u64,
    /// Print one JSON object per probe and line, for scripts (no summary).
    #[arg(long, env = "CHOCOMINER_JSON", value_parser = clap::builder::FalseyValueParser::new())]
    pub json: bool,
    // hasher and worker are asked over NATS, rng read from InfluxDB: a run uses one only.
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub influx: InfluxArgs,
}

/// The stages `ping` can probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Its numbers/s against its rate limit, from its stats in InfluxDB (httping localhost:8001).
    Rng,
    /// Its replicas' hashes/s, busy share and time per hash, from $SRV.STATS.hasher (httping
    /// localhost:8002).
    Hasher,
    /// Its replicas' hashes/s, busy share and time per hash, from $SRV.STATS.worker.
    Worker,
}

impl Target {
    fn stage(self) -> Stage {
        match self {
            Target::Rng => Stage::Rng,
            Target::Hasher => Stage::Hasher,
            Target::Worker => Stage::Worker,
        }
    }
}

/// One probe; also what `--json` prints.
#[derive(Debug, Clone, Default, Serialize)]
struct Probe {
    #[serde(serialize_with = "clock::as_rfc3339")]
    time: i64,
    /// 1 for the first probe printed.
    probe: u64,
    stage: &'static str,
    /// rng: instances alive; hasher and worker: replicas that answered.
    instances: usize,
    /// Items/s, summed; null while no replica can be compared with an earlier answer of its own.
    rate: Option<f64>,
    /// rng: its instances' limits summed, numbers/s (0: one of them is unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<f64>,
    /// Share of the time spent on items, 0..1, instances averaged (rng: of its limit used).
    busy: Option<f64>,
    /// Milliseconds one item costs one instance (rng: a number at its limit).
    ms_per_item: Option<f64>,
    /// hasher and worker: mean milliseconds from a batch's arrival to its answer, waits included.
    #[serde(skip_serializing_if = "Option::is_none")]
    answer_ms: Option<f64>,
    /// rng and hasher: batches sent and not yet acknowledged...
    #[serde(skip_serializing_if = "Option::is_none")]
    in_flight: Option<f64>,
    /// ...rng: and the most it may have out.
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<f64>,
    /// The figures of each instance (rng: its names only, its figures are the stage's).
    each: Vec<Each>,
    /// hasher and worker: items made and the seconds spent on them, for the summary to weigh.
    #[serde(skip)]
    items: f64,
    #[serde(skip)]
    busy_seconds: f64,
}

/// One instance's share of a probe.
#[derive(Debug, Clone, Default, Serialize)]
struct Each {
    instance: String,
    /// hasher and worker: the replica's service id.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    busy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms_per_item: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer_ms: Option<f64>,
}

pub async fn run(args: PingArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let stage = args.stage.stage();
    let mut prober = match stage {
        Stage::Rng => Prober::Influx(influx::Client::new(&args.influx)?),
        _ => {
            let client = crate::nats::connect(&args.nats, "chocominer ping", &shutdown).await?;
            let Some(client) = client else {
                return Ok(());
            };
            Prober::Nats {
                client,
                stage,
                last: BTreeMap::new(),
            }
        }
    };
    // A service's figures are differences between two answers: its probe 0, not shown, gives
    // the replicas' starting totals.
    let (start, first) = match prober {
        Prober::Influx(_) => (Instant::now(), 1),
        Prober::Nats { .. } => (just_after_a_second(), 0),
    };
    let mut ticks = tokio::time::interval_at(start, EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probes = Vec::new();
    for n in first..=args.count {
        let probe = tokio::select! {
            probe = async {
                ticks.tick().await;
                prober.probe(n).await
            } => probe,
            // Interrupted, as httping: the summary of the probes made so far.
            _ = shutdown.triggered(), if n == 0 => return Ok(()),
            _ = shutdown.triggered(), if n > 0 => break,
        };
        let probe = match probe {
            Ok(_) if n == 0 => continue,
            Ok(probe) => probe,
            // Unreachable from the start: one line, as `status` says it.
            Err(e) if probes.is_empty() => return Err(e),
            // Gone on the way: said, and the next probe tries again. With --json, stdout
            // stays JSON only.
            Err(e) => {
                eprintln!("chocominer: {}", output::escape(&format!("{e:#}")));
                probes.push(Probe {
                    probe: n,
                    stage: stage.name(),
                    ..Probe::default()
                });
                continue;
            }
        };
        let text = if args.json {
            output::json_line(&probe)?
        } else {
            format!("{}\n", line(stage, &probe))
        };
        output::print(&text)?;
        probes.push(probe);
    }
    if !args.json {
        output::print(&format!("{}\n", summary(stage, &probes)))?;
    }
    if !probes.is_empty() && probes.iter().all(|p| p.instances == 0) {
        let (who, did) = match stage {
            Stage::Rng => ("instance", "wrote stats to InfluxDB"),
            _ => ("replica", "answered on NATS"),
        };
        anyhow::bail!(
            "no {stage} {who} {did} during the {}: is one running? (`just scale {stage} 1`)",
            count(probes.len(), "probe")
        );
    }
    Ok(())
}

/// The next whole second of the wall clock, plus [`AFTER_THE_SECOND`].
fn just_after_a_second() -> Instant {
    const SECOND_NS: i64 = 1_000_000_000;
    let into = chocominer_process::now_ns().rem_euclid(SECOND_NS);
    let after = AFTER_THE_SECOND.as_nanos() as i64;
    let wait = (after - into).rem_euclid(SECOND_NS);
    Instant::now() + Duration::from_nanos(wait as u64)
}

/// Where the probes' figures come from.
enum Prober {
    /// rng's stats points.
    Influx(influx::Client),
    /// A service's `$SRV.STATS`, with each replica's last answer (by service id).
    Nats {
        client: Client,
        stage: Stage,
        last: BTreeMap<String, Reading>,
    },
}

impl Prober {
    async fn probe(&mut self, n: u64) -> anyhow::Result<Probe> {
        match self {
            Prober::Influx(reader) => {
                let points = crate::status::recent(reader).await?;
                let now = chocominer_process::now_ns();
                let snapshot = Snapshot::from_points(&points, now);
                Ok(rng_probe(n, now, &snapshot))
            }
            Prober::Nats {
                client,
                stage,
                last,
            } => {
                let answers = census::ask(client, "STATS", *stage).await?;
                let now = chocominer_process::now_ns();
                let readings: BTreeMap<String, Reading> = answers
                    .iter()
                    .map(|(id, (at, answer))| (id.clone(), Reading::of(*at, answer)))
                    .collect();
                let probe = service_probe(n, now, *stage, last, &readings);
                // A replica that missed this probe is compared with its older answer next time.
                last.extend(readings);
                Ok(probe)
            }
        }
    }
}

/// rng's figures as `chocominer status` has them.
fn rng_probe(n: u64, now: i64, snapshot: &Snapshot) -> Probe {
    let f = &snapshot.rng;
    let limit = f.rate_limit.filter(|&l| l > 0.0);
    Probe {
        time: now,
        probe: n,
        stage: Stage::Rng.name(),
        instances: f.alive,
        rate: (f.alive > 0).then_some(f.rate),
        rate_limit: f.rate_limit.filter(|_| f.alive > 0),
        busy: limit.map(|l| round(f.rate / l)),
        // Each instance at its limit makes one number per 1/limit; the stage's limit is the sum.
        ms_per_item: limit.map(|l| round(1000.0 * f.alive as f64 / l)),
        in_flight: f.in_flight,
        window: f.window,
        each: f
            .instances
            .iter()
            .map(|name| Each {
                instance: name.clone(),
                ..Each::default()
            })
            .collect(),
        ..Probe::default()
    }
}

/// What one replica said in its answer to `$SRV.STATS`, summed over its endpoints.
#[derive(Debug, Clone)]
struct Reading {
    at: Instant,
    instance: String,
    /// Batches answered.
    requests: u64,
    /// Their time from arrival to answer, summed.
    processing: Duration,
    /// Items made, from the custom data (`hashes`).
    items: Option<f64>,
    /// The busy share the replica measures itself (a hasher's, over its last second).
    busy: Option<f64>,
    in_flight: Option<f64>,
}

impl Reading {
    fn of(at: Instant, answer: &Answer) -> Reading {
        let endpoints = &answer.endpoints;
        // A finite figure of the endpoints' custom data, as each has it.
        let data = |name: &'static str| {
            endpoints
                .iter()
                .filter_map(move |e| e.data.as_ref()?.get(name)?.as_f64())
                .filter(|v| v.is_finite())
        };
        Reading {
            at,
            instance: answer.instance().to_owned(),
            requests: endpoints.iter().map(|e| e.requests as u64).sum(),
            processing: endpoints.iter().map(|e| e.processing_time).sum(),
            items: data("hashes").reduce(|a, b| a + b),
            busy: data("busy").next(),
            in_flight: data("in_flight").reduce(|a, b| a + b),
        }
    }
}

/// One replica's work between two of its answers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Delta {
    seconds: f64,
    items: f64,
    /// Time spent on the items, in seconds.
    busy_seconds: f64,
    busy: f64,
    requests: f64,
    processing: f64,
}

/// The replica's work from `before` to `now`; `None` when they cannot be compared (no time
/// between them, or totals that went down: another process under the same id).
fn delta(before: &Reading, now: &Reading) -> Option<Delta> {
    let seconds = now.at.checked_duration_since(before.at)?.as_secs_f64();
    if seconds <= 0.0 || now.requests < before.requests {
        return None;
    }
    let requests = (now.requests - before.requests) as f64;
    let processing = now
        .processing
        .saturating_sub(before.processing)
        .as_secs_f64();
    let items = match (before.items, now.items) {
        (Some(b), Some(n)) if n >= b => n - b,
        (Some(_), Some(_)) => return None,
        // No item count of its own: a batch is an item.
        _ => requests,
    };
    let (busy, busy_seconds) = match now.busy {
        // The replica's own measure (the hasher's leaves out its waits for a slot or for the
        // workers, which its processing time includes).
        Some(busy) => {
            let busy = busy.clamp(0.0, 1.0);
            (busy, busy * seconds)
        }
        // None published: a worker judges one batch at a time, so the time its batches took
        // is its busy time.
        None => ((processing / seconds).min(1.0), processing),
    };
    Some(Delta {
        seconds,
        items,
        busy_seconds,
        busy,
        requests,
        processing,
    })
}

/// A probe of a service: each replica that answered, compared with its answer before.
fn service_probe(
    n: u64,
    now: i64,
    stage: Stage,
    last: &BTreeMap<String, Reading>,
    readings: &BTreeMap<String, Reading>,
) -> Probe {
    let mut probe = Probe {
        time: now,
        probe: n,
        stage: stage.name(),
        instances: readings.len(),
        ..Probe::default()
    };
    let mut deltas = Vec::new();
    for (id, reading) in readings {
        let d = last.get(id).and_then(|before| delta(before, reading));
        probe.each.push(Each {
            instance: reading.instance.clone(),
            id: Some(id.clone()),
            rate: d.map(|d| round(d.items / d.seconds)),
            busy: d.map(|d| round(d.busy)),
            ms_per_item: d.and_then(|d| ms_per(d.busy_seconds, d.items)),
            answer_ms: d.and_then(|d| ms_per(d.processing, d.requests)),
        });
        if let Some(in_flight) = reading.in_flight {
            probe.in_flight = Some(probe.in_flight.unwrap_or(0.0) + in_flight);
        }
        deltas.extend(d);
    }
    // Natural order of the names, as `status` lists them.
    probe
        .each
        .sort_by_key(|e| chocominer_status::figures::natural_key(&e.instance));
    if deltas.is_empty() {
        return probe;
    }
    let sum = |f: fn(&Delta) -> f64| deltas.iter().map(f).sum::<f64>();
    probe.rate = Some(round(deltas.iter().map(|d| d.items / d.seconds).sum()));
    probe.busy = Some(round(sum(|d| d.busy) / deltas.len() as f64));
    probe.items = sum(|d| d.items);
    probe.busy_seconds = sum(|d| d.busy_seconds);
    probe.ms_per_item = ms_per(probe.busy_seconds, probe.items);
    probe.answer_ms = ms_per(sum(|d| d.processing), sum(|d| d.requests));
    probe
}

/// Milliseconds each of `n` items took, of `seconds` in all, to three significant digits (a
/// full-profile hash takes ~0.00005 ms: rounded to 0.001 ms it read as 0); `None` without items.
fn ms_per(seconds: f64, n: f64) -> Option<f64> {
    let ms = 1000.0 * seconds / n;
    if !(n > 0.0 && ms.is_finite()) {
        return None;
    }
    if ms == 0.0 {
        return Some(0.0);
    }
    let scale = 10f64.powi(2 - ms.abs().log10().floor() as i32);
    Some((ms * scale).round() / scale)
}

/// `3 replicas`, `1 instance`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Milliseconds for people: `300 ms`, `3.3 ms`, `42 µs`, `80 ns`, `1.2 s`.
fn duration(ms: f64) -> String {
    let a = ms.abs();
    if !ms.is_finite() {
        "-".to_owned()
    } else if a >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if a >= 10.0 {
        format!("{ms:.0} ms")
    } else if a >= 1.0 {
        format!("{ms:.1} ms")
    } else if a >= 0.01 {
        format!("{:.0} µs", ms * 1000.0)
    } else if a >= 0.001 {
        format!("{:.1} µs", ms * 1000.0)
    } else {
        format!("{:.0} ns", ms * 1e6)
    }
}

/// The unit one item costs: `50 ms a hash`, `one number every 100 ms`.
fn cost(stage: Stage, ms: f64, instances: usize) -> String {
    match stage {
        Stage::Rng if instances > 1 => format!("one number every {} each", duration(ms)),
        Stage::Rng => format!("one number every {}", duration(ms)),
        _ => format!("{} a hash", duration(ms)),
    }
}

/// The probe's line: `hasher: 1 replica, 10.0 hashes/s, busy 50 %, 50 ms a hash`.
fn line(stage: Stage, p: &Probe) -> String {
    let name = stage.name();
    match stage {
        Stage::Rng if p.instances == 0 => {
            format!("{name}: no instance wrote stats in the last {ALIVE_WITHIN_SECONDS} s")
        }
        _ if p.instances == 0 => format!(
            "{name}: no replica answered $SRV.STATS.{stage} within {} ms",
            census::LISTEN.as_millis()
        ),
        Stage::Rng => {
            let mut parts = vec![
                count(p.instances, "instance"),
                format!("{} numbers/s", human::rate(p.rate.unwrap_or(0.0))),
            ];
            match (p.rate_limit, p.busy, p.ms_per_item) {
                (Some(limit), Some(busy), Some(ms)) if limit > 0.0 => {
                    let their = if p.instances > 1 { "their" } else { "its" };
                    // As it was set: `10`, not `10.0`, unless it needs a suffix or decimals.
                    let limit = if limit.fract() == 0.0 && limit < 1e4 {
                        format!("{limit:.0}")
                    } else {
                        human::rate(limit)
                    };
                    parts[1] += &format!(" of {their} {limit}/s limit ({})", percent(busy));
                    parts.push(cost(stage, ms, p.instances));
                }
                _ => parts.push("no limit".to_owned()),
            }
            if let (Some(in_flight), Some(window)) = (p.in_flight, p.window) {
                parts.push(format!("{in_flight:.0}/{window:.0} batches in flight"));
            }
            format!("{name}: {}", parts.join(", "))
        }
        _ => {
            let replicas = count(p.instances, "replica");
            let (Some(rate), Some(busy)) = (p.rate, p.busy) else {
                return format!("{name}: {replicas}, first answer (figures from the next probe)");
            };
            let mut parts = vec![
                replicas,
                format!("{} hashes/s", human::rate(rate)),
                format!("busy {}", percent(busy)),
            ];
            if let Some(ms) = p.ms_per_item {
                parts.push(cost(stage, ms, p.instances));
            }
            format!("{name}: {}", parts.join(", "))
        }
    }
}

/// The line after the probes, as httping's statistics: how many answered, then the mean of
/// their figures and the spread of the busy share.
fn summary(stage: Stage, probes: &[Probe]) -> String {
    let answered: Vec<&Probe> = probes.iter().filter(|p| p.instances > 0).collect();
    let head = format!(
        "--- {stage}: {}, {} answered",
        count(probes.len(), "probe"),
        answered.len()
    );
    let mean = |f: fn(&Probe) -> Option<f64>| {
        let values: Vec<f64> = answered.iter().filter_map(|p| f(p)).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let Some(rate) = mean(|p| p.rate) else {
        return head;
    };
    let (items, what) = match stage {
        Stage::Rng => ("numbers", "limit used"),
        _ => ("hashes", "busy"),
    };
    let mut parts = vec![format!("{} {items}/s", human::rate(rate))];
    let busy = answered.iter().filter_map(|p| p.busy);
    if let Some(avg) = mean(|p| p.busy) {
        let min = busy.clone().fold(f64::INFINITY, f64::min);
        let [min, avg, max] = [min, avg, busy.fold(0.0, f64::max)].map(|v| v * 100.0);
        parts.push(format!("{what} min/avg/max {min:.0}/{avg:.0}/{max:.0} %"));
    }
    // A service's time per hash over all its probes: a probe with few hashes weighs little.
    let total = |f: fn(&Probe) -> f64| answered.iter().map(|p| f(p)).sum();
    let ms = match stage {
        Stage::Rng => mean(|p| p.ms_per_item),
        _ => ms_per(total(|p| p.busy_seconds), total(|p| p.items)),
    };
    if let Some(ms) = ms {
        let instances = answered.last().map_or(1, |p| p.instances);
        parts.push(cost(stage, ms, instances));
    }
    format!("{head}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chocominer_status::StageFigures;

    #[test]
    fn the_time_per_item_keeps_three_significant_digits_however_small() {
        // 18 M hashes in one busy second: 0.0000556 ms each, not 0.
        assert_eq!(ms_per(1.0, 18e6), Some(0.0000556));
        assert_eq!(ms_per(0.5, 10.0), Some(50.0));
        assert_eq!(ms_per(1.0, 3.0), Some(333.0));
        assert_eq!(ms_per(0.0, 3.0), Some(0.0));
        assert_eq!(ms_per(1.0, 0.0), None);
    }

    fn reading(at: Instant, requests: u64, processing_ms: u64, items: f64) -> Reading {
        Reading {
            at,
            instance: "h1".to_owned(),
            requests,
            processing: Duration::from_millis(processing_ms),
            items: Some(items),
            busy: None,
            in_flight: None,
        }
    }

    #[test]
    fn a_worker_is_busy_for_the_processing_time_of_its_batches() {
        let t0 = Instant::now();
        let before = reading(t0, 10, 3_000, 10.0);
        let now = reading(t0 + Duration::from_secs(1), 13, 3_900, 13.0);
        let d = delta(&before, &now).unwrap();
        assert_eq!(d.items, 3.0);
        assert!((d.busy - 0.9).abs() < 1e-9, "{d:?}");
        let readings = BTreeMap::from([("id".to_owned(), now)]);
        let last = BTreeMap::from([("id".to_owned(), before)]);
        let probe = service_probe(1, 0, Stage::Worker, &last, &readings);
        assert_eq!(
            (probe.rate, probe.busy, probe.ms_per_item),
            (Some(3.0), Some(0.9), Some(300.0))
        );
        assert_eq!(
            line(Stage::Worker, &probe),
            "worker: 1 replica, 3.0 hashes/s, busy 90 %, 300 ms a hash"
        );
    }

    #[test]
    fn a_hasher_times_a_hash_by_its_own_busy_share() {
        let t0 = Instant::now();
        let before = reading(t0, 100, 60_000, 100.0);
        // Its batches waited for the workers (processing time far above hashing time): its
        // own busy share counts, not that.
        let mut now = reading(t0 + Duration::from_secs(2), 120, 80_000, 120.0);
        now.busy = Some(0.5);
        now.in_flight = Some(16.0);
        let probe = service_probe(
            2,
            0,
            Stage::Hasher,
            &BTreeMap::from([("a".to_owned(), before)]),
            &BTreeMap::from([("a".to_owned(), now)]),
        );
        assert_eq!(probe.rate, Some(10.0));
        assert_eq!(probe.ms_per_item, Some(50.0));
        assert_eq!(probe.answer_ms, Some(1000.0));
        assert_eq!(
            line(Stage::Hasher, &probe),
            "hasher: 1 replica, 10.0 hashes/s, busy 50 %, 50 ms a hash"
        );
    }

    #[test]
    fn a_replica_first_seen_has_no_figures_yet_and_one_restarted_is_not_compared() {
        let t0 = Instant::now();
        let now = reading(t0, 5, 100, 5.0);
        let probe = service_probe(
            1,
            0,
            Stage::Hasher,
            &BTreeMap::new(),
            &BTreeMap::from([("a".to_owned(), now.clone())]),
        );
        assert_eq!(probe.rate, None);
        assert_eq!(
            line(Stage::Hasher, &probe),
            "hasher: 1 replica, first answer (figures from the next probe)"
        );
        let restarted = reading(t0 + Duration::from_secs(1), 1, 10, 1.0);
        assert_eq!(delta(&now, &restarted), None);
    }

    #[test]
    fn rng_uses_a_share_of_its_limit_and_a_number_costs_one_over_it() {
        let snapshot = Snapshot {
            rng: StageFigures {
                alive: 1,
                instances: vec!["r1".into()],
                rate: 10.0,
                rate_limit: Some(10.0),
                in_flight: Some(2.0),
                window: Some(16.0),
                ..StageFigures::default()
            },
            ..Snapshot::default()
        };
        let probe = rng_probe(1, 0, &snapshot);
        assert_eq!(
            line(Stage::Rng, &probe),
            "rng: 1 instance, 10.0 numbers/s of its 10/s limit (100 %), one number every \
             100 ms, 2/16 batches in flight"
        );
        let three = Snapshot {
            rng: StageFigures {
                alive: 3,
                rate: 20.0,
                rate_limit: Some(30.0),
                ..snapshot.rng.clone()
            },
            ..Snapshot::default()
        };
        assert_eq!(
            line(Stage::Rng, &rng_probe(1, 0, &three)),
            "rng: 3 instances, 20.0 numbers/s of their 30/s limit (67 %), one number every \
             100 ms each, 2/16 batches in flight"
        );
        let unlimited = Snapshot {
            rng: StageFigures {
                rate: 13_000_000.0,
                rate_limit: Some(0.0),
                ..snapshot.rng.clone()
            },
            ..Snapshot::default()
        };
        assert_eq!(
            line(Stage::Rng, &rng_probe(1, 0, &unlimited)),
            "rng: 1 instance, 13.0 M numbers/s, no limit, 2/16 batches in flight"
        );
        let nothing = rng_probe(1, 0, &Snapshot::default());
        assert_eq!(
            line(Stage::Rng, &nothing),
            "rng: no instance wrote stats in the last 3 s"
        );
    }

    #[test]
    fn the_summary_gives_the_mean_and_the_spread_of_busy() {
        let probe = |busy: f64, items: f64| Probe {
            instances: 1,
            rate: Some(items),
            busy: Some(busy),
            ms_per_item: Some(1000.0 * busy / items),
            items,
            busy_seconds: busy,
            ..Probe::default()
        };
        // 3 hashes in 0.2 s, 5 in 0.2 s, 4 in 0.2 s: 50 ms a hash, though the probes' own
        // figures average 54.
        let probes = [probe(0.2, 3.0), probe(0.2, 5.0), probe(0.2, 4.0)];
        assert_eq!(
            summary(Stage::Hasher, &probes),
            "--- hasher: 3 probes, 3 answered: 4.0 hashes/s, busy min/avg/max 20/20/20 %, \
             50 ms a hash"
        );
        assert_eq!(
            summary(Stage::Worker, &[Probe::default()]),
            "--- worker: 1 probe, 0 answered"
        );
    }

    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(duration(300.0), "300 ms");
        assert_eq!(duration(3.33), "3.3 ms");
        assert_eq!(duration(0.042), "42 µs");
        assert_eq!(duration(0.00008), "80 ns");
        assert_eq!(duration(1234.0), "1.2 s");
    }
}
