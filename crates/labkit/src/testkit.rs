//! Helpers for the topics' end-to-end tests (`crates/<topic>/tests/cli.rs`): run the binary
//! under a hang guard while draining its output, parse its Report, and find what it left behind.
//!
//! Every process a test starts carries [`TAG_VAR`] in its environment, and children inherit it,
//! so a leftover process is found by its tag however it was started.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::report::Report;

/// The environment variable that marks a test's processes.
pub const TAG_VAR: &str = "LABKIT_TEST_TAG";

/// A tag unique to one use in this test process.
pub fn tag(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `bin args…` with the tag set, output piped, and no `RUST_BACKTRACE` (so output does not
/// depend on the caller's environment).
pub fn command(bin: &str, tag: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env(TAG_VAR, tag)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A finished run: the pid it had, and what it printed.
pub struct Done {
    pub pid: u32,
    pub out: Output,
}

impl Done {
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Stdout parsed as the typed Report (unknown fields refused); panics with both streams.
    pub fn report(&self) -> Report {
        let text = String::from_utf8_lossy(&self.out.stdout);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not a Report ({e}):\n{text}\nstderr: {}", self.stderr()))
    }
}

/// Waits at most `limit` for `child` (started with piped output), draining its output meanwhile;
/// a hang kills it and fails the test.
pub fn finish(mut child: Child, limit: Duration) -> Done {
    let pid = child.id();
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let Some(status) = crate::child::wait_timeout(&mut child, limit).expect("waitpid") else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("pid {pid} did not finish within {limit:?}");
    };
    let out = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    Done { pid, out }
}

/// Runs `bin args…` to the end (two minutes at most).
pub fn run(bin: &str, tag: &str, args: &[&str]) -> Done {
    finish(
        command(bin, tag, args).spawn().expect("start the binary"),
        Duration::from_secs(120),
    )
}

/// Running processes that carry `tag`. (A zombie's environ reads empty; by the time this is
/// called the run itself has been reaped, and an orphan is reaped by whoever adopts it.)
pub fn tagged_processes(tag: &str) -> Vec<u32> {
    let needle = format!("{TAG_VAR}={tag}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let env = std::fs::read(e.path().join("environ")).ok()?;
            env.split(|&b| b == 0)
                .any(|var| var == needle.as_bytes())
                .then_some(pid)
        })
        .collect()
}

/// What the run with this tag and top-level pid left behind: processes (after a grace period
/// for those dying), names of that pid in /dev/shm or the temp dir, its ledger.
pub fn leftovers(tag: &str, pid: u32) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tagged_processes(tag).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut found: Vec<String> = tagged_processes(tag)
        .iter()
        .map(|p| format!("process {p}"))
        .collect();
    let prefix = format!("{}-{pid}-", crate::PREFIX);
    for path in crate::names::present() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.trim_start_matches("sem.").starts_with(&prefix) {
            found.push(path.display().to_string());
        }
    }
    let ledger = crate::names::ledger_dir().join(format!("{pid}.ledger"));
    if ledger.exists() {
        found.push(format!("ledger {}", ledger.display()));
    }
    found
}

/// Fails the test if the run with this tag and top-level pid left anything behind.
pub fn assert_clean(tag: &str, pid: u32) {
    assert_eq!(
        leftovers(tag, pid),
        Vec::<String>::new(),
        "left behind by pid {pid}"
    );
}

/// Runs `bin` once per case of bad flags; each must exit 2 with a short message on stderr that
/// contains the case's needle (the limit it names), never panic, print nothing on stdout, and
/// leave nothing behind.
pub fn assert_usage_errors(bin: &str, cases: &[(&[&str], &str)]) {
    for (args, needle) in cases {
        let t = tag("bad");
        let done = run(bin, &t, args);
        let err = done.stderr();
        assert_eq!(done.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.lines().count() <= 6,
            "{args:?}: the message should be short: {err}"
        );
        assert!(done.out.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert_clean(&t, done.pid);
    }
}

/// Runs `copies` copies of `bin args…` at once; every one must exit 0 with a Report whose
/// checks pass, and leave nothing behind.
pub fn assert_crowd_passes(bin: &str, args: &[&str], copies: usize) {
    let t = tag("crowd");
    let children: Vec<Child> = (0..copies)
        .map(|_| command(bin, &t, args).spawn().expect("start a copy"))
        .collect();
    let runs: Vec<Done> = children
        .into_iter()
        .map(|c| finish(c, Duration::from_secs(300)))
        .collect();
    for done in &runs {
        assert_eq!(done.code(), Some(0), "stderr: {}", done.stderr());
        assert!(done.report().passed(), "a check failed: {}", done.stderr());
        assert_clean(&t, done.pid);
    }
}

/// Starts `command` and waits until it has a child for which `pick` (given the child's pid and
/// command line) says yes; then lets it run for `settle`. Returns the run and that child. The
/// caller must wait for the run (see [`finish`]).
#[expect(
    clippy::zombie_processes,
    reason = "the caller waits for the run it is given"
)]
pub fn start_until_child(
    mut command: Command,
    pick: impl Fn(u32, &str) -> bool,
    settle: Duration,
) -> (Child, u32) {
    let mut child = command.spawn().expect("start the binary");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = crate::procfs::children_of(child.id())
            .into_iter()
            .find(|&c| {
                let cmdline = std::fs::read(format!("/proc/{c}/cmdline")).unwrap_or_default();
                pick(c, &String::from_utf8_lossy(&cmdline).replace('\0', " "))
            });
        if let Some(found) = found {
            std::thread::sleep(settle);
            return (child, found);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pid {} never started the child the test waits for",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends `signal` to `pid`; failing (ESRCH: it has already ended) fails the test, since the
/// test then did not do what it meant to.
pub fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal) {
        panic!(
            "could not send {} to pid {pid} ({e}): it ended before the test could act",
            signal.as_str()
        );
    }
}

/// Starts `bin args…`, waits for the child that `pick` selects (by pid and command line),
/// SIGKILLs it mid-run: the run must end with exit 1 and a message containing `expect` and
/// "SIGKILL", and leave nothing behind.
pub fn assert_peer_kill_reported(
    bin: &str,
    args: &[&str],
    pick: impl Fn(u32, &str) -> bool,
    expect: &str,
) {
    let t = tag("kill");
    let (run, peer) = start_until_child(command(bin, &t, args), pick, Duration::from_millis(300));
    signal(peer, nix::sys::signal::Signal::SIGKILL);
    let done = finish(run, Duration::from_secs(120));
    let err = done.stderr();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(
        err.contains(expect) && err.contains("SIGKILL"),
        "expected {expect:?} and SIGKILL in: {err}"
    );
    assert_clean(&t, done.pid);
}

/// Starts `bin args…`, waits for the child that `pick` selects, then sends SIGINT to the run:
/// it must stop cleanly with exit 130 and leave nothing behind.
pub fn assert_sigint_stops(bin: &str, args: &[&str], pick: impl Fn(u32, &str) -> bool) {
    let t = tag("sigint");
    let (run, _) = start_until_child(command(bin, &t, args), pick, Duration::from_millis(300));
    signal(run.id(), nix::sys::signal::Signal::SIGINT);
    let done = finish(run, Duration::from_secs(120));
    assert_eq!(done.code(), Some(130), "{}", done.stderr());
    assert!(
        done.stderr().contains("interrupted by SIGINT"),
        "{}",
        done.stderr()
    );
    assert_clean(&t, done.pid);
}

/// Runs `bin args…` (a `--quick --json` run, typically): it must exit 0 with a Report that has
/// no shape problem and whose every check passed, and leave nothing behind. Returns the Report
/// for the topic's own assertions.
pub fn assert_quick_run(bin: &str, args: &[&str]) -> Report {
    let t = tag("quick");
    let done = run(bin, &t, args);
    assert_eq!(done.code(), Some(0), "stderr: {}", done.stderr());
    let report = done.report();
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    for check in &report.checks {
        assert_eq!(
            check.status,
            crate::report::Status::Pass,
            "{}: {}",
            check.name,
            check.detail
        );
    }
    assert_clean(&t, done.pid);
    report
}

/// How many random command lines [`fuzz_flags`] tries: `LAB_FUZZ_CASES`, else 100.
pub fn fuzz_cases() -> u64 {
    std::env::var("LAB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// Fuzzes a topic's flag parser in-process: `cases` random command lines, built from the
/// parser's own arguments (numbers at and past the limits, zero, negative, huge, non-numeric,
/// empty, size suffixes, unknown enum values, flags repeated or missing their value, unknown
/// flags), each parsed with `try_parse_from`. Every one must be accepted, or refused with a
/// message; a refused number must name the limit; none may panic. Returns (accepted, refused).
/// `LAB_FUZZ_SEED` replays a run; the seed is in every failure message.
pub fn fuzz_flags<P: clap::Parser>(cases: u64) -> (u64, u64) {
    let command = P::command();
    let flags: Vec<(String, bool, Vec<String>)> = command
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            if matches!(long, "help" | "version") {
                return None;
            }
            let takes_value = a.get_action().takes_values();
            let values = a
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_owned())
                .collect();
            Some((format!("--{long}"), takes_value, values))
        })
        .collect();
    const NUMBERS: &[&str] = &[
        "0",
        "1",
        "-1",
        "2",
        "7",
        "8",
        "15",
        "16",
        "100",
        "257",
        "65536",
        "65537",
        "64KiB",
        "1MiB",
        "16GiB",
        "17GiB",
        "4294967296",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
        "abc",
        "",
        "1.5",
        "1e3",
        " 5",
        "0x10",
        "-0",
        "5KiBB",
    ];
    let seed = std::env::var("LAB_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        .max(1);
    let mut state = seed;
    let mut next = move |n: usize| -> usize {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..cases {
        let mut argv = vec![command.get_name().to_owned()];
        for _ in 0..=next(4) {
            match next(12) {
                0 => argv.push("--no-such-flag".to_owned()),
                _ => {
                    let (flag, takes_value, values) = &flags[next(flags.len())];
                    argv.push(flag.clone());
                    if *takes_value && next(10) > 0 {
                        argv.push(if !values.is_empty() && next(4) > 0 {
                            values[next(values.len())].clone()
                        } else if !values.is_empty() {
                            "bogus".to_owned()
                        } else {
                            NUMBERS[next(NUMBERS.len())].to_owned()
                        });
                    }
                }
            }
        }
        let parsed = std::panic::catch_unwind(|| P::try_parse_from(&argv));
        let result = match parsed {
            Ok(r) => r,
            Err(_) => panic!("case {case} (LAB_FUZZ_SEED={seed}): the parser panicked on {argv:?}"),
        };
        match result {
            Ok(_) => accepted += 1,
            Err(e) => {
                refused += 1;
                let text = e.to_string();
                assert!(
                    !text.trim().is_empty(),
                    "case {case} (LAB_FUZZ_SEED={seed}): {argv:?} refused without a message"
                );
                if e.kind() == clap::error::ErrorKind::ValueValidation {
                    assert!(
                        [
                            "at least",
                            "at most",
                            "not a whole number",
                            "invalid",
                            "from "
                        ]
                        .iter()
                        .any(|w| text.contains(w)),
                        "case {case} (LAB_FUZZ_SEED={seed}): {argv:?}: the message names no limit: {text}"
                    );
                }
            }
        }
    }
    (accepted, refused)
}

#[cfg(test)]
mod fuzz_tests {
    /// A parser whose value parser panics on one input.
    #[derive(clap::Parser, Debug)]
    struct Fragile {
        #[arg(long, value_parser = fragile)]
        size: Option<u64>,
    }

    fn fragile(s: &str) -> Result<u64, String> {
        assert_ne!(s, "abc", "boom");
        s.parse().map_err(|_| format!("{s}: not a whole number"))
    }

    #[test]
    #[should_panic(expected = "the parser panicked")]
    fn the_fuzzer_catches_a_panicking_parser() {
        super::fuzz_flags::<Fragile>(5_000);
    }

    /// The common flags and one bounded number, as a topic has them.
    #[derive(clap::Parser, Debug)]
    struct Sound {
        #[command(flatten)]
        common: crate::CommonArgs,
        #[arg(long, value_parser = crate::cli::bounded(1, 100))]
        n: Option<u64>,
    }

    #[test]
    fn a_sound_parser_passes() {
        let (accepted, refused) = super::fuzz_flags::<Sound>(500);
        assert!(accepted > 0 && refused > 0, "{accepted} {refused}");
    }
}
