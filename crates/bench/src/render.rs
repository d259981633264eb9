//! The Markdown report of a bench run: the machine and settings, the targets, then one table
//! per part (limit, full profile, its processes, nats-server's traffic, demo scaling).

use testkit::results::{mb, rate, table};

use crate::model::{Bench, Demo, FullRun};
use crate::targets::ratio_target;

/// The whole report.
pub fn markdown(bench: &Bench) -> String {
    let mut out = format!("## Bench {}\n\n", bench.started_at);
    out += &machine(bench);
    out += "\n### Targets (issue 11)\n\n";
    out += &if bench.targets.is_empty() {
        "No part with targets ran.\n".to_owned()
    } else {
        table(
            &["target", "wanted", "measured", "result"],
            &bench
                .targets
                .iter()
                .map(|t| {
                    vec![
                        t.what.clone(),
                        t.target.clone(),
                        t.measured.clone(),
                        if t.pass { "pass" } else { "**MISS**" }.into(),
                    ]
                })
                .collect::<Vec<_>>(),
        )
    };
    out += &limit(bench);
    if !bench.full.is_empty() {
        out += &full(&bench.full);
    }
    if let Some(demo) = &bench.demo {
        out += &demo_table(demo);
    }
    out
}

fn machine(bench: &Bench) -> String {
    let (m, s) = (&bench.machine, &bench.settings);
    let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut out = format!(
        "Machine: {} cores, {} (SHA extensions `sha_ni`: {}), kernel {}, {}, nats-server {}, \
         commit {}; load average at the start {}.\n\n",
        m.cores,
        m.cpu_model,
        if m.sha_ni { "yes" } else { "no" },
        m.kernel,
        m.rustc,
        or_unknown(&m.nats_server),
        or_unknown(&m.commit),
        m.load_average,
    );
    let batches: Vec<String> = s
        .encodings
        .iter()
        .zip(&s.batches)
        .map(|(e, b)| format!("{e} {b}"))
        .collect();
    out += &format!(
        "Settings: limit {} s per encoding; encodings and batches: {}; full profile: {}; demo: \
         {}; InfluxDB: {}.\n",
        s.limit_time_s,
        batches.join(", "),
        if s.skip_full {
            "skipped".into()
        } else {
            format!("warm-up {} s, measured {} s", s.warm_up_s, s.duration_s)
        },
        if s.skip_demo {
            "skipped".into()
        } else {
            format!(
                "hashers {}, warm-up {} s, measured {} s",
                s.demo_hashers
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                s.demo_warm_up_s,
                s.demo_duration_s
            )
        },
        if s.with_influx { "yes" } else { "no" },
    );
    out
}

fn limit(bench: &Bench) -> String {
    let rows: Vec<Vec<String>> = bench
        .limit
        .iter()
        .map(|l| {
            vec![
                l.encoding.clone(),
                l.batch.to_string(),
                l.threads.to_string(),
                l.hashes.to_string(),
                format!("{:.2}", l.seconds),
                rate(l.rate),
            ]
        })
        .collect();
    format!(
        "\n### In-process limit\n\nOne thread per core, each making batches with rng's \
         `NumberMaker` and hashing them with the hasher's `digest_prefixes`: what this machine can \
         hash with the stages' own code and no NATS.\n\n{}",
        table(
            &["encoding", "batch", "threads", "hashes", "seconds", "rate"],
            &rows
        )
    )
}

/// `bytes_per_second` in MB/s with one decimal.
fn mb_per_s(bytes_per_second: f64) -> String {
    format!("{:.1} MB/s", bytes_per_second / f64::from(1 << 20))
}

fn full(runs: &[FullRun]) -> String {
    let yes = |ok: bool| if ok { "yes" } else { "NO" }.to_owned();
    let rates: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.encoding.clone(),
                r.batch.to_string(),
                rate(r.rate),
                rate(r.hasher_hashes as f64 / r.seconds.max(1e-9)),
                rate(r.rng_numbers as f64 / r.seconds.max(1e-9)),
                format!("{:+.2} %", r.rng_vs_worker() * 100.0),
                r.limit.map_or("-".into(), rate),
                r.ratio.map_or("-".into(), |x| format!("{x:.2}")),
                format!("≥ {:.2}", ratio_target(&r.encoding)),
                r.lost.map_or("?".into(), |n| n.to_string()),
                yes(r.conserved),
                yes(r.stops.clean),
            ]
        })
        .collect();
    let processes: Vec<Vec<String>> = runs
        .iter()
        .flat_map(|r| {
            r.processes.iter().map(|p| {
                vec![
                    r.encoding.clone(),
                    p.name.clone(),
                    format!("{:.2}", p.cpu_s),
                    format!("{:.0} %", p.cpu_share * 100.0),
                    mb(p.peak_rss_bytes),
                    p.ready_ms.map_or("-".into(), |ms| format!("{ms:.1}")),
                ]
            })
        })
        .collect();
    let traffic: Vec<Vec<String>> = runs
        .iter()
        .map(|r| match &r.traffic {
            Some(t) => {
                let hashes = r.worker_hashes.max(1) as f64;
                vec![
                    r.encoding.clone(),
                    format!("{:.0}", t.per_second(t.in_msgs)),
                    format!("{:.0}", t.per_second(t.out_msgs)),
                    mb_per_s(t.per_second(t.in_bytes)),
                    mb_per_s(t.per_second(t.out_bytes)),
                    format!(
                        "{:.1} / {:.1}",
                        t.in_bytes as f64 / hashes,
                        t.out_bytes as f64 / hashes
                    ),
                ]
            }
            None => vec![r.encoding.clone(), "-".into()],
        })
        .collect();
    format!(
        "\n### Full profile end to end\n\nOne rng, one hasher, one worker (`--profile full`, \
         release binaries, each a process) on a nats-server of the bench's own. Rate: the \
         worker's judged digests over the window (`$SRV.STATS`); hasher: its hashes; rng: \
         batches its connection published (`/connz`) × batch; rng vs worker: the batches in \
         flight at the ends of the window. Lost and conservation from the stages' stop \
         reports after SIGTERM.\n\n{}\n\
         Processes over the measured window: CPU time (user + system) and its share of one \
         core; peak resident memory (VmHWM) at the end; spawn to `/readyz` answering 200.\n\n{}\n\
         nats-server's traffic over the window (`/varz` deltas): messages and bytes in (from \
         clients) and out (to clients), and bytes per hash judged.\n\n{}",
        table(
            &[
                "encoding",
                "batch",
                "rate",
                "hasher",
                "rng",
                "rng vs worker",
                "limit",
                "ratio",
                "target",
                "lost",
                "conserved",
                "clean stop",
            ],
            &rates
        ),
        table(
            &[
                "encoding",
                "process",
                "CPU s",
                "CPU",
                "peak RSS MB",
                "start to ready ms"
            ],
            &processes
        ),
        table(
            &[
                "encoding",
                "msgs in/s",
                "msgs out/s",
                "bytes in",
                "bytes out",
                "bytes per hash in / out"
            ],
            &traffic
        ),
    )
}

fn demo_table(demo: &Demo) -> String {
    let rows: Vec<Vec<String>> = demo
        .runs
        .iter()
        .map(|r| {
            vec![
                r.hashers.to_string(),
                r.hashes.to_string(),
                format!("{:.2}/s", r.rate),
                format!("{:.0}/s", r.theoretical),
                format!("{:.1} %", r.of_theoretical * 100.0),
                format!("{:.1} %", r.efficiency * 100.0),
                r.lost.map_or("?".into(), |n| n.to_string()),
            ]
        })
        .collect();
    format!(
        "\n### Demo profile scaling\n\n{} rng, one worker and H hashers (`--profile demo`, the \
         worker with no simulated cost and rng's limit raised, so that the hashers are what is \
         measured): theoretical min({} × H, {} × rngs)/s (1 / `hasher_delay` per hasher, the \
         raised limit per rng); of theoretical: the per-instance rate against the theoretical per instance; \
         efficiency: rate(H) / (H × rate(1)).\n\n{}",
        demo.rngs,
        demo.per_hasher,
        demo.per_rng,
        table(
            &[
                "hashers",
                "hashes",
                "rate",
                "theoretical",
                "of theoretical",
                "efficiency",
                "lost"
            ],
            &rows
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::{bench, full_run};
    use crate::targets::judge;

    #[test]
    fn the_report_has_every_table_and_marks_misses() {
        let mut demo = Demo {
            rngs: 1,
            per_hasher: 10.0,
            per_rng: 100.0,
            runs: Vec::new(),
        };
        demo.add(1, 150, 15.0, Some(0));
        demo.add(2, 240, 15.0, Some(0));
        let mut bench = bench(vec![full_run("seeded", 0.7)], Some(demo));
        bench.targets = judge(&bench);
        let md = markdown(&bench);
        for heading in [
            "## Bench 2026-11-26T16:00:00Z",
            "### Targets (issue 11)",
            "### In-process limit",
            "### Full profile end to end",
            "### Demo profile scaling",
        ] {
            assert!(md.contains(heading), "{heading} missing:\n{md}");
        }
        assert!(md.contains("Machine: 2 cores, AMD EPYC (SHA extensions `sha_ni`: yes)"));
        assert!(md.contains("| seeded | 32000 | 2 | 50000000 | 5.00 | 10.00 M/s |"));
        assert!(md.contains("| full seeded: rate / in-process limit | ≥ 0.60 | 0.70 | pass |"));
        assert!(md.contains("| seeded | hasher | 10.00 | 50 % | 20.0 | 4.0 |"));
        // 16/s of a theoretical 20/s: a miss of both demo targets.
        assert!(md.contains("| 2 | 240 | 16.00/s | 20/s | 80.0 % | 80.0 % | 0 |"));
        assert_eq!(md.matches("**MISS**").count(), 2, "{md}");
    }

    #[test]
    fn skipped_parts_leave_no_table() {
        let md = markdown(&bench(Vec::new(), None));
        assert!(md.contains("No part with targets ran."));
        assert!(md.contains("demo: skipped"), "{md}");
        assert!(!md.contains("### Full profile"));
        assert!(!md.contains("### Demo profile"));
    }
}
