//! End-to-end tests of the `switch` binary: the quick run, bad flags, a futex peer killed
//! mid-run, SIGINT mid-run, eight copies at once. After each: no process, name or ledger left.

use std::process::Child;
use std::time::{Duration, Instant};

use labkit::report::Status;
use labkit::testkit::{self, Done, command, finish, tag};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_switch");

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
    let done = testkit::run(BIN, &t, &["--quick", "--json", "--pin", "same"]);
    assert_eq!(done.code(), Some(0), "stderr: {}", done.stderr());
    let report = done.report();
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    for check in &report.checks {
        assert_ne!(
            check.status,
            Status::Fail,
            "{}: {}",
            check.name,
            check.detail
        );
    }
    for key in [
        "round_trip/process/pipe",
        "round_trip/thread/pipe",
        "round_trip/process/futex",
        "round_trip/thread/futex",
    ] {
        let m = report.find(key).unwrap_or_else(|| panic!("no {key}"));
        assert_eq!(m.samples, Some(300), "{key}: every timed round trip");
    }
    assert_eq!(
        report
            .claims
            .iter()
            .filter(|c| c.id == "switch.process-costlier")
            .count(),
        2
    );
    assert_nothing_left(&t, done.pid);
}

#[test]
fn bad_flags_exit_2_naming_the_limit() {
    let cases: &[(&[&str], &str)] = &[
        (&["--messages", "0"], "at least 1"),
        (&["--messages", "10000001"], "at most 10000000"),
        (&["--pin", "diagonal"], "none, same, split"),
        (&["--variant", "serial"], "no `serial` variant"),
        (&["--what"], "--what"),
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

/// Starts a long process-only run on one CPU; returns it once both peers exist. (A block is a
/// fifth of the messages; a dead peer is noticed when its contender's turn comes.)
#[expect(
    clippy::zombie_processes,
    reason = "the caller waits for the child it is given"
)]
fn start_long_run(t: &str) -> (Child, Vec<u32>) {
    let mut child = command(
        BIN,
        t,
        &[
            "--json",
            "--variant",
            "process",
            "--pin",
            "same",
            "--messages",
            "1000000",
        ],
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let peers = labkit::procfs::children_of(child.id());
        if peers.len() == 2 {
            std::thread::sleep(Duration::from_millis(300)); // Well into the blocks.
            return (child, peers);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("switch never started both peers");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_futex_peer_killed_mid_run_is_reported_with_exit_1() {
    let t = tag("kill");
    let (child, peers) = start_long_run(&t);
    let futex_peer = peers
        .iter()
        .copied()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.windows(10).any(|w| w == b"futex-pong"))
        })
        .expect("a futex-pong peer");
    kill(Pid::from_raw(futex_peer as i32), Signal::SIGKILL).unwrap();
    let done = finish(child, Duration::from_secs(60));
    let err = done.stderr();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(
        err.contains("futex-pong peer") && err.contains("SIGKILL"),
        "{err}"
    );
    assert_nothing_left(&t, done.pid);
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    let t = tag("sigint");
    let (child, _) = start_long_run(&t);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let done = finish(child, Duration::from_secs(30));
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
