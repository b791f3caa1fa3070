//! End-to-end tests of the `isolation` binary: the quick run, bad flags, no core file, eight
//! copies at once. After each: no process, no name in /dev/shm or the temp dir, no ledger left.

use std::time::Duration;

use labkit::{Variant, Verdict};
use testkit::{self, command, finish, tag};

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

/// Files whose name starts with `core` in `dir`: what a core dump would leave with the
/// default `core_pattern`.
fn cores_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("core"))
        .collect()
}

/// A fresh working directory, so a core file would land where the test can see it.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("isolation-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_quick_run_passes_every_check_and_dumps_no_core() {
    let t = tag("quick");
    let cwd = scratch("quick");
    let done = finish(
        command(BIN, &t, &["--quick", "--json"])
            .current_dir(&cwd)
            .spawn()
            .unwrap(),
        Duration::from_secs(120),
    );
    let report = done.passing_report();
    for variant in [Variant::Process, Variant::Thread] {
        let m = report
            .measurements
            .iter()
            .find(|m| m.variant == variant)
            .expect("both variants");
        assert_eq!(m.samples, Some(256), "every page timed");
    }
    for id in [
        "mem.process-isolated",
        "mem.threads-share",
        "resources.shared",
        "isolation.fault-contained",
        "usecase.isolation",
    ] {
        let claim = report
            .claims
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no {id}"));
        assert_eq!(claim.verdict, Verdict::Holds, "{id}: {}", claim.evidence);
    }
    // Two processes crashed on purpose; neither left a core file.
    assert_eq!(cores_in(&cwd), Vec::<String>::new());
    std::fs::remove_dir_all(&cwd).unwrap();
    testkit::assert_clean(&t, done.pid);
}

#[test]
fn the_timing_child_killed_mid_run_is_reported_with_exit_1() {
    // Found by `cargo xtask torture`: the forked child that times copy-on-write faults, killed,
    // gave "failed to fill whole buffer" instead of how it died. Large pages keep it alive
    // long enough to be killed; it is the forked child (no --role) that outlives 50 ms.
    let t = tag("kill-timing");
    let run = command(BIN, &t, &["--json", "--pages", "131072"])
        .spawn()
        .expect("start isolation");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let victim = loop {
        assert!(std::time::Instant::now() < deadline, "no timing child seen");
        let forked = labkit::procfs::children_of(run.id())
            .into_iter()
            .find(|&c| {
                let cmd = std::fs::read(format!("/proc/{c}/cmdline")).unwrap_or_default();
                !String::from_utf8_lossy(&cmd).contains("--role")
            });
        if let Some(c) = forked {
            std::thread::sleep(Duration::from_millis(50));
            if labkit::procfs::children_of(run.id()).contains(&c) {
                break c;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    testkit::signal(victim, nix::sys::signal::Signal::SIGKILL);
    let done = finish(run, Duration::from_secs(120));
    let err = done.stderr();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(err.contains("SIGKILL"), "{err}");
    testkit::assert_clean(&t, done.pid);
}

#[test]
fn every_promise_of_help_is_kept() {
    testkit::assert_stated_limits_refused(BIN);
}

/// Eight copies at once, in a scratch directory: every copy passes, and none of the processes
/// crashed on purpose leaves a core file. (Not `standard_tests!`, whose copies run here.)
#[test]
fn eight_copies_at_once_all_pass() {
    let cwd = scratch("eight");
    testkit::assert_crowd_passes_in(&cwd, BIN, &["--quick", "--json"], 8);
    assert_eq!(cores_in(&cwd), Vec::<String>::new());
    std::fs::remove_dir_all(&cwd).unwrap();
}

#[test]
fn pages_beyond_the_address_space_limit_are_refused_before_starting() {
    let limit = testkit::Resource::RLIMIT_AS;
    let args = ["--quick", "--pages", "262144"]; // 1 GiB
    testkit::assert_refused_under(BIN, limit, 512 << 20, &args, "RLIMIT_AS=536870912");
}
