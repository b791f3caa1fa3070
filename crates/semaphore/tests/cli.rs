//! End-to-end tests of the `semaphore` binary: the quick run, bad flags, a producer killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, no named semaphore
//! in /dev/shm, no ledger left.

use std::process::Child;
use std::time::{Duration, Instant};

use labkit::Verdict;
use labkit::report::Status;
use labkit::testkit::{self, Done, command, finish, tag};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_semaphore");

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
    assert_nothing_left(&t, done.pid);
}

#[test]
fn bad_flags_exit_2_naming_the_limit() {
    let cases: &[(&[&str], &str)] = &[
        (&["--items", "0"], "at least 1"),
        (&["--producers", "65"], "at most 64"),
        (&["--producers", "x"], "from 1 to 64"),
        (&["--pin", "split"], "--pin must be `none`"),
        (&["--variant", "thread"], "runs both"),
        (&["--sem"], "--sem"),
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

/// Starts a run with long-lived producers; returns it once a producer exists.
#[expect(
    clippy::zombie_processes,
    reason = "the caller waits for the child it is given"
)]
fn start_long_run(t: &str) -> (Child, u32) {
    let mut child = command(BIN, t, &["--json", "--items", "100000000"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let producer = labkit::procfs::children_of(child.id())
            .into_iter()
            .find(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.windows(7).any(|w| w == b"produce"))
            });
        if let Some(producer) = producer {
            std::thread::sleep(Duration::from_millis(200));
            return (child, producer);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("semaphore never started a producer");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_producer_killed_mid_run_is_reported_with_exit_1() {
    let t = tag("kill");
    let (child, producer) = start_long_run(&t);
    kill(Pid::from_raw(producer as i32), Signal::SIGKILL).unwrap();
    let done = finish(child, Duration::from_secs(60));
    let err = done.stderr();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(
        err.contains("produce peer") && err.contains("SIGKILL"),
        "{err}"
    );
    assert_nothing_left(&t, done.pid);
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    let t = tag("sigint");
    let (child, _) = start_long_run(&t);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let done = finish(child, Duration::from_secs(60));
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
