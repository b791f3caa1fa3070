//! End-to-end tests of the `mutex` binary: the quick run, bad flags, a counting child killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, name or ledger left.

use std::process::Child;
use std::time::{Duration, Instant};

use labkit::Verdict;
use labkit::report::Status;
use labkit::testkit::{self, Done, command, finish, tag};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_mutex");

fn assert_nothing_left(tag: &str, pid: u32) {
    assert_eq!(
        testkit::leftovers(tag, pid),
        Vec::<String>::new(),
        "left behind"
    );
}

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
    assert_nothing_left(&t, done.pid);
}

#[test]
fn bad_flags_exit_2_naming_the_limit() {
    let cases: &[(&[&str], &str)] = &[
        (&["--increments", "0"], "at least 1"),
        (&["--parties", "65"], "at most 64"),
        (&["--parties", "few"], "from 1 to 64"),
        (&["--pin", "same"], "--pin must be `none`"),
        (&["--variant", "process"], "runs both"),
        (&["--lock"], "--lock"),
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

/// Starts a run whose counting child has much to do; returns once it exists (the first,
/// one-party block).
#[expect(
    clippy::zombie_processes,
    reason = "the caller waits for the child it is given"
)]
fn start_long_run(t: &str) -> (Child, u32) {
    let mut child = command(BIN, t, &["--json", "--increments", "20000000"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(&kid) = labkit::procfs::children_of(child.id()).first() {
            std::thread::sleep(Duration::from_millis(200));
            return (child, kid);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mutex never started a counting child");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_counting_child_killed_mid_run_is_reported_with_exit_1() {
    let t = tag("kill");
    let (child, kid) = start_long_run(&t);
    kill(Pid::from_raw(kid as i32), Signal::SIGKILL).unwrap();
    let done = finish(child, Duration::from_secs(120));
    let err = done.stderr();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(
        err.contains("increment peer") && err.contains("SIGKILL"),
        "{err}"
    );
    assert_nothing_left(&t, done.pid);
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    let t = tag("sigint");
    let (child, _) = start_long_run(&t);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let done = finish(child, Duration::from_secs(120));
    assert_eq!(done.code(), Some(130), "{}", done.stderr());
    assert_nothing_left(&t, done.pid);
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
