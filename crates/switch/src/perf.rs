//! The reference this topic measures beside its own hand-offs: `perf bench sched pipe`, the
//! kernel developers' pipe ping-pong (two processes, or two threads with `-T`).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// `perf bench sched pipe -l LOOPS` (`-T`: two threads instead of two processes), on `cpu` when
/// given (`taskset`), as the init of a PID namespace of its own (`unshare --pid --fork
/// --kill-child`) that dies with the thread starting it (`PR_SET_PDEATHSIG`). perf forks a
/// worker that holds both ends of its pipes: were perf killed, the worker would block forever
/// and outlive us; in the namespace the kernel kills it with perf, and perf with `unshare`.
/// The reference beside our figures; read its result with [`round_trip_ns`].
pub fn bench_sched_pipe(threads: bool, cpu: Option<usize>, loops: u64) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child=SIGKILL", "--"]);
    if let Some(cpu) = cpu {
        cmd.args(["taskset", "-c", &cpu.to_string()]);
    }
    cmd.args(["perf", "bench", "sched", "pipe", "-l", &loops.to_string()]);
    if threads {
        cmd.arg("-T");
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs in the forked child before exec: `die_with_parent` makes only plain system
    // calls and allocates nothing.
    unsafe {
        cmd.pre_exec(move || labkit::child::die_with_parent(parent));
    }
    cmd
}

/// The mean round trip, in ns, that `perf bench sched pipe` printed (its `usecs/op` line).
pub fn round_trip_ns(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .find(|l| l.contains("usecs/op"))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map(|us| us * 1000.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn perf_output_gives_the_mean_round_trip() {
        let out = "# Running 'sched/pipe' benchmark:\n# Executed 20000 pipe operations between \
                   two processes\n\n     Total time: 0.865 [sec]\n\n      43.287800 usecs/op\n  \
                   23101 ops/sec\n";
        let ns = super::round_trip_ns(out).expect("a usecs/op line");
        assert!((ns - 43_287.8).abs() < 1e-6, "{ns}");
        assert_eq!(super::round_trip_ns("Total time: 0.865 [sec]\n"), None);
    }
}
