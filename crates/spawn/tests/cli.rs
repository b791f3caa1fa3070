//! End-to-end tests of the `spawn` binary: the quick run, bad flags, SIGINT mid-run, eight
//! copies at once. After each: no process, no name, no ledger left.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::{self, command, finish, tag};

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

#[test]
fn the_quick_run_passes_every_check() {
    let report = testkit::assert_quick_run(BIN, &["--quick", "--json"]);
    for mechanism in ["fork", "fork-exec", "posix_spawn", "command"] {
        let m = report
            .find(&format!("create/process/{mechanism}"))
            .unwrap_or_else(|| panic!("no {mechanism}"));
        assert_eq!(m.samples, Some(30));
    }
    for key in [
        "create/thread/thread-spawn",
        "create/thread/scoped-thread",
        "create/thread/pthread",
        "create/thread/rayon-task",
        "memory_per_unit/task/tokio-task",
    ] {
        assert!(report.find(key).is_some(), "no {key}");
    }
    let tasks = report
        .find("create/task/tokio-task")
        .expect("no task creation");
    assert_eq!(tasks.samples, Some(30));
    // --quick goes up to an 8 MiB parent: 1 and 8 MiB, three ways each.
    assert_eq!(
        report
            .measurements
            .iter()
            .filter(|m| m.name == "create_vs_rss")
            .count(),
        6
    );
    let ids: Vec<&str> = report.claims.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "overhead.process-creation",
            "task.creation-cheaper",
            "overhead.process-memory"
        ]
    );
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    let t = tag("sigint");
    let child = command(BIN, &t, &["--json", "--iterations", "1000000"])
        .spawn()
        .unwrap();
    // Wait until it has created some children, then interrupt it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_children = false;
    while !seen_children && Instant::now() < deadline {
        seen_children = !labkit::procfs::children_of(child.id()).is_empty();
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let done = finish(child, Duration::from_secs(30));
    assert!(seen_children, "spawn never created a child");
    assert_eq!(done.code(), Some(130), "{}", done.stderr());
    testkit::assert_clean(&t, done.pid);
}

testkit::standard_tests!(BIN);

#[test]
fn max_rss_beyond_the_address_space_limit_is_refused_before_starting() {
    let gib = 1 << 30;
    let limit = testkit::Resource::RLIMIT_AS;
    let args = ["--quick", "--max-rss", "4096"];
    testkit::assert_refused_under(BIN, limit, gib, &args, "RLIMIT_AS=1073741824");
}
