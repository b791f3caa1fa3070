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

#[test]
fn every_limit_stated_in_help_is_refused() {
    testkit::assert_stated_limits_refused(BIN);
}

#[test]
fn bad_flags_exit_2_naming_the_limit() {
    testkit::assert_usage_errors(
        BIN,
        &[
            (&["--parties", "few"], "from 1 to 64"),
            (&["--pin", "same"], "unexpected argument '--pin'"),
            (
                &["--variant", "serial"],
                "[possible values: process, thread]",
            ),
            (&["--lock"], "--lock"),
        ],
    );
}

/// A counting child with much to do (the first, one-party block); the tests act once it exists.
const LONG: &[&str] = &["--json", "--increments", "100000000"];

#[test]
fn a_counting_child_killed_mid_run_is_reported_with_exit_1() {
    testkit::assert_peer_kill_reported(BIN, LONG, |_, _| true, "increment peer");
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    testkit::assert_sigint_stops(BIN, LONG, |_, _| true);
}

#[test]
fn eight_copies_at_once_all_pass() {
    testkit::assert_crowd_passes(BIN, &["--quick", "--json"], 8);
}
