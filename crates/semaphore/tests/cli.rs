//! End-to-end tests of the `semaphore` binary: the quick run, bad flags, a producer killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, no named semaphore
//! in /dev/shm, no ledger left.

use labkit::Verdict;

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

#[test]
fn the_quick_run_passes_every_check() {
    let report = testkit::assert_quick_run(BIN, &["--quick", "--json"]);
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
}

#[test]
fn every_limit_stated_in_help_is_refused() {
    testkit::assert_stated_limits_refused(BIN);
}

/// Bad flags beyond the limits `--help` states as numbers (`--items` says `2^40`).
#[test]
fn bad_flags_exit_2_naming_the_limit() {
    testkit::assert_usage_errors(
        BIN,
        &[
            (&["--items", "0"], "at least 1"),
            (&["--producers", "x"], "from 1 to 64"),
            (&["--pin", "sideways"], "each, none, same, split"),
            (
                &["--variant", "serial"],
                "[possible values: process, thread]",
            ),
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
