//! End-to-end tests of the `switch` binary: the quick run, bad flags, a futex peer killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, name or ledger left.

use labkit::report::Status;
use testkit::{self, tag};

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

#[test]
fn the_quick_run_passes_every_check() {
    let t = tag("quick");
    let done = testkit::run(BIN, &t, &["--quick", "--json", "--pin", "same"]);
    let report = done.report_of_success();
    assert!(
        testkit::problems(&report).is_empty(),
        "{:?}",
        testkit::problems(&report)
    );
    for check in &report.checks {
        assert_ne!(
            check.status,
            Status::Fail,
            "{}: {}",
            check.name,
            check.detail
        );
    }
    // Every timed round trip is in its histogram.
    let keys =
        ["pipe", "futex"].map(|m| ["process", "thread"].map(|v| format!("round_trip/{v}/{m}")));
    let keys: Vec<&str> = keys.iter().flatten().map(String::as_str).collect();
    testkit::assert_samples(&report, &keys, 300);
    assert_eq!(
        report
            .claims
            .iter()
            .filter(|c| c.id == "switch.process-costlier")
            .count(),
        2
    );
    testkit::assert_clean(&t, done.pid);
}

/// A long process-only run on one CPU. (A block is a fifth of the messages; a dead peer is
/// noticed when its contender's turn comes.)
const LONG: &[&str] = &[
    "--json",
    "--variant",
    "process",
    "--pin",
    "same",
    "--messages",
    "1000000",
];

fn futex_peer(_: u32, cmdline: &str) -> bool {
    cmdline.contains("--role futex-pong")
}

#[test]
fn a_pipe_peer_killed_mid_run_is_reported_with_exit_1() {
    // Found by `cargo xtask torture`: a pipe peer killed just before it reported its tally
    // gave "failed to fill whole buffer" without saying the peer had died.
    testkit::assert_peer_kill_reported(
        BIN,
        LONG,
        |_, cmd| cmd.contains("--role pipe-pong"),
        "pipe-pong peer",
    );
}

#[test]
fn perf_killed_mid_run_leaves_no_worker_behind() {
    // Found by `cargo xtask torture`: perf bench's forked worker holds both ends of its pipes,
    // so a killed perf left it blocked forever (and the run waiting for its output). perf now
    // runs as the init of a PID namespace of its own: killing it takes the worker with it.
    if std::process::Command::new("perf")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("perf is not installed: nothing to kill");
        return;
    }
    let t = testkit::tag("kill-perf");
    // perf loops as many times as we do: long enough to be caught running.
    let args = ["--json", "--messages", "50000"];
    let (run, unshare) = testkit::start_until_child(
        testkit::command(BIN, &t, &args),
        |_, cmd| cmd.contains("unshare --pid"),
        std::time::Duration::ZERO,
    );
    let perf = testkit::first_child_of(unshare, std::time::Duration::from_secs(10), "perf");
    std::thread::sleep(std::time::Duration::from_millis(100)); // Its worker forked by now.
    testkit::signal(perf, nix::sys::signal::Signal::SIGKILL);
    let done = testkit::finish(run, std::time::Duration::from_secs(120));
    let report = done.report_of_success();
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name.contains("perf") && c.status == labkit::report::Status::Skip),
        "perf's run should be reported as skipped"
    );
    testkit::assert_clean(&t, done.pid);
}

testkit::standard_tests!(BIN, long: LONG, peer: futex_peer, killed: "futex-pong peer");
