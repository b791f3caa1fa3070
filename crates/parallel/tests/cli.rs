//! End-to-end tests of the `parallel` binary: the quick run, bad flags, eight copies at once.
//! After each: no process, no name, no ledger left.

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

#[test]
fn the_quick_run_gives_one_result_every_way() {
    let report = testkit::assert_quick_run(BIN, &["--quick", "--json", "--workers", "3"]);
    // Serial once, then three ways for 1, 2 and 3 workers, each with a job histogram.
    let jobs = report
        .measurements
        .iter()
        .filter(|m| m.name == "job")
        .count();
    assert_eq!(jobs, 1 + 3 * 3);
    for key in [
        "job/serial/loop",
        "job/thread/rayon",
        "job/thread/scoped-threads",
        "job/process/fork",
    ] {
        let m = report.find(key).unwrap_or_else(|| panic!("no {key}"));
        assert_eq!(m.samples, Some(3), "{key}: one sample per block");
        assert!(
            m.cpu_ns_per_op.is_some_and(|c| c > 0.0),
            "{key}: CPU time counted"
        );
    }
    // The small job, like with like: created per job, and pools created before the jobs.
    for key in [
        "small_job/thread/scoped-threads",
        "small_job/process/fork",
        "small_job/thread/thread-pool",
        "small_job/process/process-pool",
    ] {
        let m = report.find(key).unwrap_or_else(|| panic!("no {key}"));
        assert!(m.cpu_ns_per_op.is_some_and(|c| c > 0.0), "{key}: CPU time");
    }
    let ids: Vec<(&str, &[String])> = report
        .claims
        .iter()
        .map(|c| (c.id.as_str(), c.compares.as_slice()))
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids[..2].iter().all(|c| c.0 == "concurrency.both-parallel"));
    assert_eq!(
        ids[2..],
        [
            (
                "usecase.shared-data",
                &[
                    "small_job/process/fork".to_owned(),
                    "small_job/thread/scoped-threads".to_owned()
                ][..]
            ),
            (
                "usecase.shared-data",
                &[
                    "small_job/process/process-pool".to_owned(),
                    "small_job/thread/thread-pool".to_owned()
                ][..]
            ),
        ]
    );
}

/// A run big enough to be mid-way when the tests act (its fork helper exists from the start).
const LONG: &[&str] = &["--json", "--limit", "2000000"];

testkit::standard_tests!(BIN, long: LONG, peer: |_, _| true, killed: "forker peer");

#[test]
fn workers_beyond_the_descriptor_limit_are_refused_before_starting() {
    let limit = testkit::Resource::RLIMIT_NOFILE;
    let args = ["--quick", "--workers", "8"];
    testkit::assert_refused_under(BIN, limit, 20, &args, "RLIMIT_NOFILE=20");
}
