//! End-to-end tests of the `condvar` binary: the quick run, bad flags and stated limits, the peer killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, name or ledger left.

use labkit::Verdict;

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

#[test]
fn the_quick_run_passes_every_check() {
    let report = testkit::assert_quick_run(BIN, &["--quick", "--json"]);
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
}

#[test]
fn every_limit_stated_in_the_help_is_refused() {
    testkit::assert_stated_limits_refused(BIN);
}

/// The refusals `--help` does not state one past a limit: flags this topic lacks, wrong words.
#[test]
fn bad_flags_exit_2_naming_the_limit() {
    testkit::assert_usage_errors(
        BIN,
        &[
            (&["--pin", "same"], "unexpected argument '--pin'"),
            (
                &["--variant", "serial"],
                "[possible values: process, thread]",
            ),
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
