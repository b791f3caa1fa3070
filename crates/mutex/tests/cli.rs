//! End-to-end tests of the `mutex` binary: the quick run, bad flags, a counting child killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, name or ledger left.

use labkit::Verdict;

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

#[test]
fn the_quick_run_passes_every_check() {
    let report = testkit::assert_quick_run(BIN, &["--quick", "--json"]);
    let parties: Vec<u64> = report
        .measurements
        .iter()
        .filter(|m| m.name == "increments" && m.variant == labkit::Variant::Process)
        .map(|m| m.config["parties"].as_u64().unwrap())
        .collect();
    assert_eq!(parties, [1, 2, 4]);
    for claim in &report.claims {
        assert_eq!(
            claim.verdict,
            Verdict::Holds,
            "{}: {}",
            claim.id,
            claim.evidence
        );
    }
}

/// A counting child with much to do (the first, one-party block); the tests act once it exists.
const LONG: &[&str] = &["--json", "--increments", "100000000"];

testkit::standard_tests!(BIN, long: LONG, peer: |_, _| true, killed: "increment peer");
