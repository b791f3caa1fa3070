//! End-to-end tests of the `condvar` binary: the quick run, bad flags, the peer killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, name or ledger left.

use labkit::Verdict;
use labkit::report::Status;
use labkit::testkit::{self, assert_clean, tag};

const BIN: &str = env!("CARGO_BIN_EXE_condvar");

#[test]
fn the_quick_run_passes_every_check() {
    let t = tag("quick");
    let done = testkit::run(BIN, &t, &["--quick", "--json"]);
    assert_eq!(done.code(), Some(0), "stderr: {}", done.stderr());
    let report = done.report();
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    for check in &report.checks {
        assert_eq!(
            check.status,
            Status::Pass,
            "{}: {}",
            check.name,
            check.detail
        );
    }
    for key in [
        "round_trip/process/pthread-cond-pshared",
        "round_trip/thread/std-condvar",
    ] {
        assert_eq!(report.find(key).and_then(|m| m.samples), Some(300), "{key}");
    }
    assert!(
        report
            .find("spurious_wakeups/process/pthread-cond-pshared")
            .is_some()
    );
    assert_eq!(
        report.claims[0].verdict,
        Verdict::Holds,
        "{}",
        report.claims[0].evidence
    );
    assert_clean(&t, done.pid);
}

#[test]
fn bad_flags_exit_2_naming_the_limit() {
    testkit::assert_usage_errors(
        BIN,
        &[
            (&["--messages", "0"], "at least 1"),
            (&["--messages", "10000001"], "at most 10000000"),
            (&["--pin", "same"], "--pin must be `none`"),
            (&["--variant", "process"], "runs both"),
            (&["--notify"], "--notify"),
        ],
    );
}

const LONG: &[&str] = &["--json", "--messages", "10000000"];

#[test]
fn the_peer_killed_mid_run_is_reported_with_exit_1() {
    testkit::assert_peer_kill_reported(BIN, LONG, |_, _| true, "pong peer");
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    testkit::assert_sigint_stops(BIN, LONG, |_, _| true);
}

#[test]
fn eight_copies_at_once_all_pass() {
    testkit::assert_crowd_passes(BIN, &["--quick", "--json"], 8);
}
