//! `perf bench sched pipe`, the independent reference beside switch's and pipes' figures.

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::workspace;

/// Round trips per `perf bench sched pipe` run.
const PERF_LOOPS: u64 = 20_000;

/// Whether `perf` runs here.
pub fn available() -> bool {
    Command::new("perf")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One `perf bench sched pipe` (`-T`: two threads), on one CPU or placed by the scheduler;
/// its mean round trip in ns.
pub fn bench(threads: bool, same_cpu: bool) -> Result<f64> {
    let cpu = same_cpu.then(|| {
        labkit::pin::allowed_cpus()
            .ok()
            .and_then(|c| c.first().copied())
            .unwrap_or(0)
    });
    // In a PID namespace of its own (perf's forked worker dies with perf), taskset to `cpu`,
    // killed with the thread that starts it: as `switch` runs it (its `perf.rs`).
    let mut command = Command::new("unshare");
    command.args(["--pid", "--fork", "--kill-child=SIGKILL", "--"]);
    if let Some(cpu) = cpu {
        command.args(["taskset", "-c", &cpu.to_string()]);
    }
    let loops = PERF_LOOPS.to_string();
    command.args(["perf", "bench", "sched", "pipe", "-l", &loops]);
    command.args(threads.then_some("-T"));
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs in the forked child before exec; `die_with_parent` makes only plain system
    // calls and allocates nothing.
    unsafe {
        command.pre_exec(move || labkit::child::die_with_parent(parent));
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("run unshare … perf bench sched pipe")?;
    let out = workspace::drain(child.stdout.take().expect("piped"));
    let status = match labkit::child::wait_timeout(&mut child, Duration::from_secs(60))
        .context("waitpid perf")?
    {
        Some(s) => s,
        None => {
            let _ = child.kill();
            child.wait().context("waitpid perf")?
        }
    };
    let text = out.join().unwrap_or_default();
    anyhow::ensure!(status.success(), "exited with {status}");
    // Its `usecs/op` line: the mean round trip in microseconds.
    text.lines()
        .find(|l| l.contains("usecs/op"))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map(|us| us * 1000.0)
        .context("no usecs/op line in its output")
}
