//! End-to-end tests of the `semaphore` binary: the quick run, bad flags, a producer killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, no named semaphore
//! in /dev/shm, no ledger left.

use labkit::Verdict;
use labkit::report::Status;
use labkit::testkit::{self, assert_clean, tag};

const BIN: &str = env!("CARGO_BIN_EXE_semaphore");

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
        "items/process/sem-pshared",
        "items/process/sem-named",
        "items/thread/condvar-sem",
    ] {
        assert!(report.find(key).is_some(), "no {key}");
    }
    assert_eq!(
        report
            .find("round_trip/process/sem-pshared")
            .unwrap()
            .samples,
        Some(300)
    );
    assert_eq!(report.claims[0].verdict, Verdict::Holds);
    assert_clean(&t, done.pid);
}

#[test]
fn bad_flags_exit_2_naming_the_limit() {
    testkit::assert_usage_errors(
        BIN,
        &[
            (&["--items", "0"], "at least 1"),
            (&["--producers", "65"], "at most 64"),
            (&["--producers", "x"], "from 1 to 64"),
            (&["--pin", "split"], "--pin must be `none`"),
            (&["--variant", "thread"], "runs both"),
            (&["--sem"], "--sem"),
        ],
    );
}

/// Long-lived producers; the tests act once one exists.
const LONG: &[&str] = &["--json", "--items", "100000000"];

fn producer(_: u32, cmdline: &str) -> bool {
    cmdline.contains("--role produce")
}

#[test]
fn a_producer_killed_mid_run_is_reported_with_exit_1() {
    testkit::assert_peer_kill_reported(BIN, LONG, producer, "produce peer");
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    testkit::assert_sigint_stops(BIN, LONG, producer);
}

#[test]
fn eight_copies_at_once_all_pass() {
    testkit::assert_crowd_passes(BIN, &["--quick", "--json"], 8);
}
