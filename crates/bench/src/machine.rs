//! The machine a bench ran on: cores, CPU model and whether it has the SHA extensions, kernel,
//! compiler, and the commit of the code, so a figure is never read without them.

use std::process::Command;

use crate::model::Machine;

/// The compiler that built this binary, captured by the build script.
const RUSTC: &str = env!("BENCH_RUSTC_VERSION");

/// This machine; `nats_server` is filled in once a nats-server answered.
pub fn this_machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let (cpu_model, sha_ni) = cpu(&cpuinfo);
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        sha_ni,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |k| k.trim().to_owned()),
        rustc: RUSTC.to_owned(),
        nats_server: None,
        commit: commit(),
        load_average: std::fs::read_to_string("/proc/loadavg").map_or_else(
            |_| "unknown".into(),
            |load| {
                load.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        ),
    }
}

/// The first `model name` of `/proc/cpuinfo`, and whether its `flags` have `sha_ni`.
fn cpu(cpuinfo: &str) -> (String, bool) {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == key).then(|| value.trim().to_owned())
        })
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let sha_ni =
        field("flags").is_some_and(|flags| flags.split_whitespace().any(|f| f == "sha_ni"));
    (model, sha_ni)
}

/// The short commit of the working directory, `-dirty` when tracked files differ from it.
fn commit() -> Option<String> {
    let git = |args: &[&str]| {
        let output = Command::new("git").args(args).output().ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|changes| !changes.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_read_from_cpuinfo() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 sha_ni avx2\n\
                       processor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu(cpuinfo), ("AMD EPYC 7B13".into(), true));
        assert_eq!(cpu("flags : fpu sha_nix\n"), ("unknown CPU".into(), false));
        let here = this_machine();
        assert!(
            here.cores >= 1 && here.rustc.starts_with("rustc "),
            "{here:?}"
        );
    }
}
