//! End-to-end tests of the `parallel` binary: the quick run, bad flags, eight copies at once.
//! After each: no process, no name, no ledger left.

use std::time::Duration;

use labkit::report::Status;
use labkit::testkit::{self, Done, command, finish, tag};

const BIN: &str = env!("CARGO_BIN_EXE_parallel");

fn assert_nothing_left(tag: &str, pid: u32) {
    assert_eq!(
        testkit::leftovers(tag, pid),
        Vec::<String>::new(),
        "left behind"
    );
}

#[test]
fn the_quick_run_gives_one_result_every_way() {
    let t = tag("quick");
    let done = testkit::run(BIN, &t, &["--quick", "--json", "--workers", "3"]);
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
    let ids: Vec<&str> = report.claims.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "concurrency.both-parallel",
            "concurrency.both-parallel",
            "usecase.shared-data"
        ]
    );
    assert_nothing_left(&t, done.pid);
}

#[test]
fn bad_flags_exit_2_naming_the_limit() {
    let cases: &[(&[&str], &str)] = &[
        (&["--limit", "999"], "at least 1000"),
        (&["--workers", "0"], "at least 1"),
        (&["--workers", "33"], "at most 32"),
        (&["--workers", "two"], "from 1 to 32"),
        (&["--pin", "split"], "--pin must be `none`"),
        (&["--nope"], "--nope"),
    ];
    for (args, needle) in cases {
        let t = tag("bad");
        let done = testkit::run(BIN, &t, args);
        let err = done.stderr();
        assert_eq!(done.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_nothing_left(&t, done.pid);
    }
}

#[test]
fn eight_copies_at_once_all_pass() {
    let t = tag("eight");
    let children: Vec<_> = (0..8)
        .map(|_| command(BIN, &t, &["--quick", "--json"]).spawn().unwrap())
        .collect();
    let runs: Vec<Done> = children
        .into_iter()
        .map(|c| finish(c, Duration::from_secs(300)))
        .collect();
    for done in &runs {
        assert_eq!(done.code(), Some(0), "stderr: {}", done.stderr());
        assert!(done.report().passed());
        assert_nothing_left(&t, done.pid);
    }
}

/// Starts a run big enough to be mid-way when the test acts; returns it and its fork helper.
#[expect(
    clippy::zombie_processes,
    reason = "the caller waits for the child it is given"
)]
fn start_long_run(t: &str) -> (std::process::Child, u32) {
    let mut child = command(BIN, t, &["--json", "--limit", "2000000"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(&helper) = labkit::procfs::children_of(child.id()).first() {
            std::thread::sleep(Duration::from_millis(300));
            return (child, helper);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("parallel never started its fork helper");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_killed_fork_helper_is_reported_with_exit_1() {
    let t = tag("kill");
    let (child, helper) = start_long_run(&t);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(helper as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let done = finish(child, Duration::from_secs(120));
    let err = done.stderr();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(
        err.contains("forker peer") && err.contains("SIGKILL"),
        "{err}"
    );
    assert_nothing_left(&t, done.pid);
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    let t = tag("sigint");
    let (child, _) = start_long_run(&t);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let done = finish(child, Duration::from_secs(120));
    assert_eq!(done.code(), Some(130), "{}", done.stderr());
    assert_nothing_left(&t, done.pid);
}
