//! What a bench run measured, as one value: the Markdown report is rendered from it and the
//! JSON result is it, serialized. The arithmetic on the raw figures (rates, ratios, scaling
//! efficiency, nats-server's traffic over a window) lives here with the figures it makes.

use std::fmt::Display;

use serde::Serialize;
use serde_json::Value;

/// The whole result of a run. A part that was skipped is empty (`full`) or `null` (`demo`).
#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    /// When it started, RFC 3339 UTC.
    pub started_at: String,
    pub machine: Machine,
    pub settings: Settings,
    /// The in-process limit, per encoding.
    pub limit: Vec<Limit>,
    /// The full profile end to end, per encoding.
    pub full: Vec<FullRun>,
    pub demo: Option<Demo>,
    /// The targets beside the figures; filled by `targets::judge`.
    pub targets: Vec<Target>,
}

/// One target beside what was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub pass: bool,
}

impl Target {
    pub(crate) fn new(what: impl Display, target: &str, measured: String, pass: bool) -> Target {
        Target {
            what: what.to_string(),
            target: target.to_owned(),
            measured,
            pass,
        }
    }
}

/// The machine and software the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    /// Whether the CPU has the SHA extensions (`sha_ni` in `/proc/cpuinfo`), which the sha2
    /// crate uses when present: several times faster hashing.
    pub sha_ni: bool,
    pub kernel: String,
    /// The compiler that built the bench (and, built by the same cargo, the stages).
    pub rustc: String,
    /// From nats-server's `/varz`; `None` if no nats-server ran.
    pub nats_server: Option<String>,
    /// `git rev-parse --short HEAD`, `-dirty` when tracked files differ; `None` outside git.
    pub commit: Option<String>,
    /// The 1, 5 and 15 minute load averages when the bench started (`/proc/loadavg`): other
    /// work on the machine takes cores from the figures.
    pub load_average: String,
}

/// The settings of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub limit_time_s: f64,
    pub warm_up_s: f64,
    pub duration_s: f64,
    pub demo_hashers: Vec<u32>,
    pub demo_warm_up_s: f64,
    pub demo_duration_s: f64,
    pub encodings: Vec<String>,
    /// Numbers per batch, per encoding, in the order of `encodings`.
    pub batches: Vec<usize>,
    pub skip_full: bool,
    pub skip_demo: bool,
    pub with_influx: bool,
}

/// Numbers made and hashed in-process on every core: the most the machine can hash with the
/// stages' own code and nothing else.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    pub encoding: String,
    pub batch: usize,
    pub threads: usize,
    pub seconds: f64,
    pub hashes: u64,
    /// Hashes per second, all threads together.
    pub rate: f64,
}

/// One process over a measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessFigures {
    pub name: String,
    /// User + system CPU time over the window.
    pub cpu_s: f64,
    /// `cpu_s` as a share of one core over the window (1.0: one core busy all along).
    pub cpu_share: f64,
    /// The most it was resident (`VmHWM`) at the end of the window.
    pub peak_rss_bytes: u64,
    /// Spawn to `/readyz` answering 200, for the stages.
    pub ready_ms: Option<f64>,
}

/// nats-server's counters over a window: deltas of `/varz`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Traffic {
    pub seconds: f64,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Traffic {
    /// The counters of `after` less those of `before` (two `/varz` answers, `seconds` apart);
    /// `None` if either lacks one, or a counter went back (the server restarted).
    pub fn between(before: &Value, after: &Value, seconds: f64) -> Option<Traffic> {
        let delta = |key: &str| after[key].as_u64()?.checked_sub(before[key].as_u64()?);
        Some(Traffic {
            seconds,
            in_msgs: delta("in_msgs")?,
            out_msgs: delta("out_msgs")?,
            in_bytes: delta("in_bytes")?,
            out_bytes: delta("out_bytes")?,
        })
    }

    /// `count` per second over the window.
    pub fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.seconds.max(1e-9)
    }
}

/// The totals the stages logged when they stopped (SIGTERM) at the end of a run; `None` where
/// a stage's report could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stops {
    /// rng: numbers made and sent.
    pub generated: Option<u64>,
    pub rng_lost: Option<u64>,
    pub rng_lost_batches: Option<u64>,
    /// The hashers together.
    pub hasher_lost: Option<u64>,
    /// The worker: digests judged.
    pub judged: Option<u64>,
    /// Every stage exited 0 on SIGTERM.
    pub clean: bool,
}

impl Stops {
    /// Numbers lost (rng's and the hashers'); `None` if a report is missing.
    pub fn lost(&self) -> Option<u64> {
        Some(self.rng_lost? + self.hasher_lost?)
    }

    /// Whether every number rng made was judged or counted lost: generated = judged + lost.
    pub fn conserved(&self) -> bool {
        match (self.generated, self.judged, self.lost()) {
            (Some(generated), Some(judged), Some(lost)) => generated == judged + lost,
            _ => false,
        }
    }
}

/// The full profile end to end for one encoding: one rng, hasher and worker process.
#[derive(Debug, Clone, Serialize)]
pub struct FullRun {
    pub encoding: String,
    pub batch: usize,
    /// The measured window.
    pub seconds: f64,
    /// Digests the worker judged in the window (its `$SRV.STATS` `hashes`).
    pub worker_hashes: u64,
    /// Numbers the hasher hashed in the window (its `$SRV.STATS` `hashes`).
    pub hasher_hashes: u64,
    /// Numbers rng sent in the window: batches its connection published (`/connz` `in_msgs`)
    /// times the batch size.
    pub rng_numbers: u64,
    /// The worker's hashes per second: the pipeline's rate.
    pub rate: f64,
    /// The in-process limit of the same encoding, if it was measured.
    pub limit: Option<f64>,
    /// `rate / limit`.
    pub ratio: Option<f64>,
    /// rng, hasher, worker, nats-server, and the bench itself.
    pub processes: Vec<ProcessFigures>,
    pub traffic: Option<Traffic>,
    pub stops: Stops,
    pub lost: Option<u64>,
    pub conserved: bool,
}

impl FullRun {
    /// How far rng's count over the window is from the worker's, as a share of the worker's:
    /// the batches in flight at either end of the window, nothing more when nothing is lost.
    pub fn rng_vs_worker(&self) -> f64 {
        (self.rng_numbers as f64 - self.worker_hashes as f64) / (self.worker_hashes.max(1) as f64)
    }
}

/// The demo profile scaled over hashers: one rng, one worker, H hashers.
#[derive(Debug, Clone, Serialize)]
pub struct Demo {
    pub rngs: u32,
    /// What one hasher can do: 1 / `hasher_delay` of the demo profile.
    pub per_hasher: f64,
    /// What one rng may make: ten hashers' worth (the bench lifts rng's limit, see demo.rs).
    pub per_rng: f64,
    pub runs: Vec<DemoRun>,
}

/// One H of the demo scaling.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRun {
    pub hashers: u32,
    pub seconds: f64,
    /// Digests the worker judged in the window.
    pub hashes: u64,
    pub rate: f64,
    /// `min(per_hasher × H, per_rng × rngs)`.
    pub theoretical: f64,
    /// Per-instance rate against the theoretical one: `(rate / H) / (theoretical / H)`.
    pub of_theoretical: f64,
    /// `rate(H) / (H × rate(1))`, against the smallest H measured when 1 was not.
    pub efficiency: f64,
    /// Numbers lost (rng's and the hashers' stop reports).
    pub lost: Option<u64>,
}

impl Demo {
    /// Adds the run of `hashers` hashers that judged `hashes` in `seconds`; efficiency against
    /// the first run added (the smallest H, runs are added in increasing H).
    pub fn add(&mut self, hashers: u32, hashes: u64, seconds: f64, lost: Option<u64>) {
        let rate = hashes as f64 / seconds.max(1e-9);
        let theoretical =
            (self.per_hasher * f64::from(hashers)).min(self.per_rng * f64::from(self.rngs));
        let efficiency = match self.runs.first() {
            // Per hasher, against per hasher of the base run.
            Some(base) => {
                (rate / f64::from(hashers)) / (base.rate / f64::from(base.hashers)).max(1e-9)
            }
            None => 1.0,
        };
        self.runs.push(DemoRun {
            hashers,
            seconds,
            hashes,
            rate,
            theoretical,
            of_theoretical: rate / theoretical.max(1e-9),
            efficiency,
            lost,
        });
    }
}

/// Made-up results for the tests of the report and the targets.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A bench with the given parts, on a made-up machine.
    pub(crate) fn bench(full: Vec<FullRun>, demo: Option<Demo>) -> Bench {
        Bench {
            started_at: "2026-11-26T16:00:00Z".into(),
            machine: Machine {
                cores: 2,
                cpu_model: "AMD EPYC".into(),
                sha_ni: true,
                kernel: "6.8.0".into(),
                rustc: "rustc 1.91.0".into(),
                nats_server: Some("2.15.1".into()),
                commit: Some("abc1234".into()),
                load_average: "0.10 0.20 0.30".into(),
            },
            settings: Settings {
                limit_time_s: 5.0,
                warm_up_s: 5.0,
                duration_s: 20.0,
                demo_hashers: vec![1, 2],
                demo_warm_up_s: 5.0,
                demo_duration_s: 15.0,
                encodings: vec!["seeded".into(), "raw".into()],
                batches: vec![32_000, 16_368],
                skip_full: false,
                skip_demo: demo.is_none(),
                with_influx: false,
            },
            limit: vec![Limit {
                encoding: "seeded".into(),
                batch: 32_000,
                threads: 2,
                seconds: 5.0,
                hashes: 50_000_000,
                rate: 10e6,
            }],
            full,
            demo,
            targets: Vec::new(),
        }
    }

    pub(crate) fn full_run(encoding: &str, ratio: f64) -> FullRun {
        let process = |name: &str, rss: u64, ready: Option<f64>| ProcessFigures {
            name: name.into(),
            cpu_s: 10.0,
            cpu_share: 0.5,
            peak_rss_bytes: rss,
            ready_ms: ready,
        };
        FullRun {
            encoding: encoding.into(),
            batch: 32_000,
            seconds: 20.0,
            worker_hashes: 100_000_000,
            hasher_hashes: 100_000_000,
            rng_numbers: 100_032_000,
            rate: 5e6,
            limit: Some(5e6 / ratio),
            ratio: Some(ratio),
            processes: vec![
                process("rng", 6 << 20, Some(3.0)),
                process("hasher", 20 << 20, Some(4.0)),
                process("worker", 10 << 20, Some(5.0)),
                process("nats-server", 80 << 20, None),
            ],
            traffic: None,
            stops: Stops {
                generated: Some(10),
                rng_lost: Some(0),
                rng_lost_batches: Some(0),
                hasher_lost: Some(0),
                judged: Some(10),
                clean: true,
            },
            lost: Some(0),
            conserved: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn traffic_is_the_delta_of_two_varz() {
        let before = json!({"in_msgs": 100, "out_msgs": 200, "in_bytes": 1000, "out_bytes": 3000,
                            "version": "2.15.1"});
        let after = json!({"in_msgs": 300, "out_msgs": 600, "in_bytes": 5000, "out_bytes": 9000});
        let traffic = Traffic::between(&before, &after, 2.0).unwrap();
        assert_eq!(
            traffic,
            Traffic {
                seconds: 2.0,
                in_msgs: 200,
                out_msgs: 400,
                in_bytes: 4000,
                out_bytes: 6000
            }
        );
        assert_eq!(traffic.per_second(traffic.out_bytes), 3000.0);
        // A counter missing, or gone back (a restarted server): no figure rather than a wrong one.
        assert_eq!(Traffic::between(&before, &json!({}), 2.0), None);
        assert_eq!(Traffic::between(&after, &before, 2.0), None);
        assert_eq!(Traffic::between(&Value::Null, &after, 2.0), None);
    }

    fn demo() -> Demo {
        Demo {
            rngs: 1,
            per_hasher: 10.0,
            per_rng: 100.0,
            runs: Vec::new(),
        }
    }

    #[test]
    fn demo_scaling_is_judged_per_instance_and_against_one_hasher() {
        let mut demo = demo();
        demo.add(1, 150, 15.0, Some(0));
        demo.add(2, 294, 15.0, Some(0));
        demo.add(10, 1500, 15.0, None);
        demo.add(12, 1500, 15.0, Some(0));
        let [one, two, ten, twelve] = &demo.runs[..] else {
            panic!("four runs")
        };
        assert_eq!(
            (one.rate, one.theoretical, one.efficiency),
            (10.0, 10.0, 1.0)
        );
        assert!((two.rate - 19.6).abs() < 1e-9);
        assert!((two.of_theoretical - 0.98).abs() < 1e-9);
        assert!((two.efficiency - 0.98).abs() < 1e-9);
        assert_eq!((ten.theoretical, ten.of_theoretical), (100.0, 1.0));
        // Beyond rng's cap: theoretical stays at 100/s, efficiency falls as hashers idle.
        assert_eq!(twelve.theoretical, 100.0);
        assert!((twelve.efficiency - 100.0 / 120.0).abs() < 1e-9);
    }

    #[test]
    fn efficiency_is_against_the_smallest_h_when_one_is_not_measured() {
        let mut demo = demo();
        demo.add(2, 300, 15.0, Some(0));
        demo.add(4, 570, 15.0, Some(0));
        assert_eq!(demo.runs[0].efficiency, 1.0);
        assert!((demo.runs[1].efficiency - 0.95).abs() < 1e-9);
    }

    #[test]
    fn conservation_needs_every_report() {
        let stops = Stops {
            generated: Some(1000),
            rng_lost: Some(10),
            rng_lost_batches: Some(1),
            hasher_lost: Some(0),
            judged: Some(990),
            clean: true,
        };
        assert!(stops.conserved());
        assert_eq!(stops.lost(), Some(10));
        assert!(
            !Stops {
                judged: Some(989),
                ..stops
            }
            .conserved()
        );
        let missing = Stops {
            hasher_lost: None,
            ..stops
        };
        assert_eq!(missing.lost(), None);
        assert!(!missing.conserved());
    }
}
