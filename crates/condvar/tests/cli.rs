//! End-to-end tests of the `condvar` binary: the quick run, bad flags and stated limits, the peer killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, name or ledger left.

use labkit::Verdict;

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

#[test]
fn the_quick_run_passes_every_check() {
    let report = testkit::assert_quick_run(BIN, &["--quick", "--json"]);
    let round_trips = [
        "round_trip/process/pthread-cond-pshared",
        "round_trip/thread/std-condvar",
    ];
    testkit::assert_samples(&report, &round_trips, 300);
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

const LONG: &[&str] = &["--json", "--messages", "10000000"];

testkit::standard_tests!(BIN, long: LONG, peer: |_, _| true, killed: "pong peer");
