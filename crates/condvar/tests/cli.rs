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

/// This topic does not place its sides: `--pin` is not one of its flags. (What `--help`
/// promises is checked by `standard_tests!`.)
#[test]
fn bad_flags_exit_2_naming_the_limit() {
    testkit::assert_usage_errors(BIN, &[(&["--pin", "same"], "unexpected argument '--pin'")]);
}

const LONG: &[&str] = &["--json", "--messages", "10000000"];

testkit::standard_tests!(BIN, long: LONG, peer: |_, _| true, killed: "pong peer");
