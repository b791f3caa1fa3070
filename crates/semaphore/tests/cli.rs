//! End-to-end tests of the `semaphore` binary: the quick run, bad flags, a producer killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, no named semaphore
//! in /dev/shm, no ledger left.

use labkit::Verdict;

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

#[test]
fn the_quick_run_passes_every_check() {
    let report = testkit::assert_quick_run(BIN, &["--quick", "--json"]);
    let items = [
        "items/process/sem-pshared",
        "items/process/sem-named",
        "items/thread/condvar-sem",
    ];
    testkit::assert_measured(&report, &items);
    assert_eq!(
        report
            .find("round_trip/process/sem-pshared")
            .unwrap()
            .samples,
        Some(300)
    );
    assert_eq!(report.claims[0].verdict, Verdict::Holds);
}

/// A limit `--help` states in words (`--items` from 1 to 2^40), beyond what `standard_tests!`
/// reads.
#[test]
fn bad_flags_exit_2_naming_the_limit() {
    testkit::assert_usage_errors(BIN, &[(&["--items", "0"], "at least 1")]);
}

/// Long-lived producers; the tests act once one exists.
const LONG: &[&str] = &["--json", "--items", "100000000"];

fn producer(_: u32, cmdline: &str) -> bool {
    cmdline.contains("--role produce")
}

testkit::standard_tests!(BIN, long: LONG, peer: producer, killed: "produce peer");
