//! End-to-end tests of the `pipes` binary: the quick run, bad flags, a peer killed mid-run,
//! SIGINT mid-run, two copies at once, a closed stdout, a squatted name. After each: nothing in
//! /dev/shm, no ledger entry, no temporary directory, no process left.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::{self, Done, assert_clean, command, finish, tag};

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

fn run(tag: &str, args: &[&str]) -> Done {
    testkit::run(BIN, tag, args)
}

fn start(tag: &str, args: &[&str]) -> Child {
    command(BIN, tag, args).spawn().expect("start pipes")
}

#[test]
fn the_quick_run_passes_every_check() {
    let t = tag("quick");
    let done = run(&t, &["--quick", "--json"]);
    let report = done.passing_report();
    assert_eq!(report.topic, env!("CARGO_PKG_NAME"));
    for key in [
        "round_trip/process/pipe",
        "round_trip/thread/pipe",
        "round_trip/thread/channel",
        "throughput/process/pipe",
        "throughput/thread/pipe",
        "throughput/thread/channel",
    ] {
        let m = report.find(key).unwrap_or_else(|| panic!("no {key}"));
        assert!(
            m.cpu_ns_per_op.is_some_and(|c| c > 0.0),
            "{key} has no CPU time"
        );
    }
    let rt = report.find("round_trip/process/pipe").unwrap();
    assert_eq!(
        rt.samples,
        Some(600),
        "every timed round trip is in the histogram"
    );
    for id in ["comm.threads-faster", "comm.process-needs-ipc"] {
        assert!(report.claims.iter().any(|c| c.id == id), "no claim {id}");
    }
    // The same profile built this test and the binary; a debug build says so.
    let debug = report.host.profile == "debug";
    assert_eq!(debug, cfg!(debug_assertions));
    assert_eq!(
        done.stderr().contains("debug build"),
        debug,
        "{}",
        done.stderr()
    );
    assert_clean(&t, done.pid);
}

#[test]
fn one_side_and_a_placement_can_be_chosen() {
    let t = tag("thread-same");
    let args = [
        "--quick",
        "--json",
        "--variant",
        "thread",
        "--pin",
        "same",
        "--bytes",
        "4KiB",
    ];
    let done = run(&t, &args);
    let report = done.report_of_success();
    assert!(
        report
            .measurements
            .iter()
            .all(|m| m.variant == labkit::Variant::Thread)
    );
    assert!(report.find("round_trip/thread/channel").is_some());
    assert_eq!(report.params["pin"], "same");
    assert_eq!(report.params["bytes"], 4096);
    assert!(report.passed());
    assert_clean(&t, done.pid);
}

/// Values written other ways than one past a limit: zero, sizes with suffixes. (What `--help`
/// promises is checked by `standard_tests!`.)
#[test]
fn bad_flags_exit_2_naming_the_limit() {
    testkit::assert_usage_errors(
        BIN,
        &[
            (&["--messages", "0"], "at least 1"),
            (&["--bytes", "0"], "at least 8"),
            (&["--bytes", "2MiB"], "at most 1048576"),
            (&["--total", "17GiB"], "at most 17179869184"),
        ],
    );
}

/// Starts a long run and waits until it has a child (the echo peer), then lets a few thousand
/// round trips happen: the run is under way. With `own_group`, the run leads a process group
/// of its own, so a signal can reach the run and its peer together, as a terminal's or a
/// service manager's does.
fn start_long_run(t: &str, own_group: bool) -> (Child, u32) {
    let mut command = command(
        BIN,
        t,
        &["--json", "--variant", "process", "--messages", "5000000"],
    );
    if own_group {
        command.process_group(0);
    }
    testkit::start_until_child(command, |_, _| true, Duration::from_millis(300))
}

#[test]
fn a_peer_killed_mid_run_is_reported_with_exit_1() {
    let t = tag("kill");
    let (child, peer) = start_long_run(&t, false);
    kill(Pid::from_raw(peer as i32), Signal::SIGKILL).unwrap();
    let done = finish(child, Duration::from_secs(30));
    let err = done.stderr();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(err.contains("died") && err.contains("SIGKILL"), "{err}");
    assert!(err.contains(&format!("pid {peer}")), "{err}");
    assert!(done.out.stdout.is_empty(), "no report after a broken run");
    assert_clean(&t, done.pid);
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    let t = tag("sigint");
    let (child, _peer) = start_long_run(&t, false);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let done = finish(child, Duration::from_secs(30));
    let err = done.stderr();
    assert_eq!(done.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    // The peer is killed before our pipe ends close, so it reports nothing of its own.
    assert!(!err.contains("(child)"), "{err}");
    assert_clean(&t, done.pid);
}

#[test]
fn sigterm_to_the_whole_group_stops_cleanly_with_143() {
    let t = tag("sigterm");
    let (child, _peer) = start_long_run(&t, true);
    kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGTERM).unwrap();
    let done = finish(child, Duration::from_secs(30));
    let err = done.stderr();
    assert_eq!(done.code(), Some(143), "{err}");
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    assert_clean(&t, done.pid);
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let t = tag("closed");
    let mut child = start(&t, &["--quick", "--json"]);
    // Close our end at once, as `| head -c 10` does once it has its bytes: the Report's write
    // then fails with EPIPE, which must end the program quietly.
    drop(child.stdout.take());
    let done = finish(child, Duration::from_secs(120));
    let err = done.stderr();
    assert_eq!(done.code(), Some(0), "{err}");
    assert!(!err.contains("error") && !err.contains("panicked"), "{err}");
    assert_clean(&t, done.pid);
}

#[test]
fn a_squatted_name_is_refused_and_left_alone() {
    if !cfg!(debug_assertions) {
        return; // The predictable-name setting exists in debug builds only.
    }
    let t = tag("squat");
    let token = format!("squat-{}", std::process::id());
    let squatted = std::env::temp_dir().join(format!("pvt-test-{token}"));
    std::fs::create_dir(&squatted).unwrap();
    let done = finish(
        command(BIN, &t, &["--quick", "--json"])
            .env("LABKIT_TEST_NEXT_NAME", &token)
            .spawn()
            .unwrap(),
        Duration::from_secs(120),
    );
    let err = done.stderr();
    let still_there = Path::new(&squatted).is_dir();
    std::fs::remove_dir(&squatted).unwrap();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(err.contains("File exists") && err.contains(&token), "{err}");
    assert!(still_there, "the squatter's directory was removed");
    assert_clean(&t, done.pid);
}

testkit::standard_tests!(BIN);
