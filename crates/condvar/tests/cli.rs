//! End-to-end tests of the `condvar` binary: the quick run, bad flags, the peer killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, name or ledger left.

use std::process::Child;
use std::time::{Duration, Instant};

use labkit::Verdict;
use labkit::report::Status;
use labkit::testkit::{self, Done, command, finish, tag};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_condvar");

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
    assert_nothing_left(&t, done.pid);
}

#[test]
fn bad_flags_exit_2_naming_the_limit() {
    let cases: &[(&[&str], &str)] = &[
        (&["--messages", "0"], "at least 1"),
        (&["--messages", "10000001"], "at most 10000000"),
        (&["--pin", "same"], "--pin must be `none`"),
        (&["--variant", "process"], "runs both"),
        (&["--notify"], "--notify"),
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

#[expect(
    clippy::zombie_processes,
    reason = "the caller waits for the child it is given"
)]
fn start_long_run(t: &str) -> (Child, u32) {
    let mut child = command(BIN, t, &["--json", "--messages", "10000000"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(&peer) = labkit::procfs::children_of(child.id()).first() {
            std::thread::sleep(Duration::from_millis(300));
            return (child, peer);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("condvar never started its peer");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_peer_killed_mid_run_is_reported_with_exit_1() {
    let t = tag("kill");
    let (child, peer) = start_long_run(&t);
    kill(Pid::from_raw(peer as i32), Signal::SIGKILL).unwrap();
    let done = finish(child, Duration::from_secs(60));
    let err = done.stderr();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(
        err.contains("pong peer") && err.contains("SIGKILL"),
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
