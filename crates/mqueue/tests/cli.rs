//! End-to-end tests of the `mqueue` binary: the quick run, bad flags (limits of this kernel),
//! a peer killed mid-run, SIGINT mid-run, eight copies at once (within the mq quota). After
//! each: no process, no queue, no ledger left.

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

fn limit(name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{name}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_quick_run_passes_every_check() {
    let report = testkit::assert_quick_run(BIN, &["--quick", "--json"]);
    testkit::assert_measured(
        &report,
        &[
            "round_trip/process/mq",
            "round_trip/thread/channel",
            "throughput/process/mq",
            "throughput/thread/channel",
        ],
    );
    assert_eq!(report.params["msg_max"], limit("msg_max"));
    assert_eq!(report.params["msgsize_max"], limit("msgsize_max"));
}

/// The limits `--help` names by the kernel's files (`fs.mqueue.msgsize_max`, `msg_max`), read
/// here as this machine has them, and the lowest sizes. (The rest of what `--help` promises is
/// checked by `standard_tests!`.)
#[test]
fn limits_and_bad_flags_exit_2_naming_them() {
    let too_big = (limit("msgsize_max") + 1).to_string();
    let too_deep = (limit("msg_max") + 1).to_string();
    testkit::assert_usage_errors(
        BIN,
        &[
            (&["--bytes", &too_big], "/proc/sys/fs/mqueue/msgsize_max"),
            (&["--depth", &too_deep], "/proc/sys/fs/mqueue/msg_max"),
            (&["--bytes", "7"], "at least 8"),
            (&["--depth", "0"], "at least 1"),
        ],
    );
}

/// A long stream; the tests act once its sink exists.
const LONG: &[&str] = &["--json", "--messages", "100000000"];

fn sink(_: u32, cmdline: &str) -> bool {
    cmdline.contains("--role sink")
}

#[test]
fn the_echo_killed_during_round_trips_wakes_the_untimed_wait() {
    // Killed as soon as it exists: the parent is in (or about to enter) a plain mq_receive,
    // which only the watchdog's marker message can end.
    let t = testkit::tag("kill-echo");
    let (run, echo) = testkit::start_until_child(
        testkit::command(BIN, &t, &["--json"]),
        |_, cmd| cmd.contains("--role echo"),
        std::time::Duration::ZERO,
    );
    testkit::signal(echo, nix::sys::signal::Signal::SIGKILL);
    let done = testkit::finish(run, std::time::Duration::from_secs(60));
    let err = done.stderr();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(
        err.contains("echo peer") && err.contains("SIGKILL"),
        "{err}"
    );
    testkit::assert_clean(&t, done.pid);
}

testkit::standard_tests!(BIN, long: LONG, peer: sink, killed: "sink peer");
