//! Helpers for the topics' end-to-end tests (`crates/<topic>/tests/cli.rs`): run the binary
//! under a hang guard while draining its output, parse its Report, and find what it left behind.
//!
//! Every process a test starts carries [`TAG_VAR`] in its environment, and children inherit it,
//! so a leftover process is found by its tag however it was started.

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod problems;
pub use problems::{contradictions, problems};

use labkit::report::Report;
/// The limits [`assert_refused_under`] sets.
pub use nix::sys::resource::Resource;

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

    /// The Report of a run that must have exited 0 (skipped checks allowed).
    pub fn report_of_success(&self) -> Report {
        assert_eq!(self.code(), Some(0), "stderr: {}", self.stderr());
        self.report()
    }

    /// The Report of a run that must have passed: exit 0, no shape problem, every check `pass`.
    pub fn passing_report(&self) -> Report {
        let report = self.report_of_success();
        assert!(problems(&report).is_empty(), "{:?}", problems(&report));
        for check in &report.checks {
            assert_eq!(
                check.status,
                labkit::report::Status::Pass,
                "{}: {}",
                check.name,
                check.detail
            );
        }
        report
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
    let Some(status) = labkit::child::wait_timeout(&mut child, limit).expect("waitpid") else {
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
    let prefix = format!("{}-{pid}-", labkit::PREFIX);
    for path in present() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.trim_start_matches("sem.").starts_with(&prefix) {
            found.push(path.display().to_string());
        }
    }
    let ledger = labkit::names::ledger_dir().join(format!("{pid}.ledger"));
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

/// The first child `pid` has, waiting for one up to `limit`; panics naming `what` if none comes.
pub fn first_child_of(pid: u32, limit: Duration, what: &str) -> u32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(&c) = labkit::procfs::children_of(pid).first() {
            return c;
        }
        assert!(Instant::now() < deadline, "{what}: no child of {pid} came");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Each of `keys` (`name/variant/mechanism`) is among the Report's measurements.
pub fn assert_measured(report: &Report, keys: &[&str]) {
    for key in keys {
        assert!(report.find(key).is_some(), "no measurement {key}");
    }
}

/// Each of `keys` is measured and holds `samples` samples (every timed operation, say).
pub fn assert_samples(report: &Report, keys: &[&str], samples: u64) {
    for key in keys {
        let m = report
            .find(key)
            .unwrap_or_else(|| panic!("no measurement {key}"));
        assert_eq!(m.samples, Some(samples), "{key}: samples");
    }
}

/// What `bin --help` promises about each flag is what the binary does: a value one past a
/// stated limit (`from 8 to 1MiB`, `at most 64`), a word where a number is stated, or a value
/// outside the stated `possible values`, exits 2 naming the limit or the values, as
/// [`assert_usage_errors`] checks; so does a flag no topic has. A flag's help is the contract a
/// user reads; this keeps the binary to it, for every flag at once.
pub fn assert_stated_limits_refused(bin: &str) {
    let help = run(bin, &tag("help"), &["--help"]);
    assert_eq!(help.code(), Some(0), "{bin} --help: {}", help.stderr());
    let text = String::from_utf8_lossy(&help.out.stdout).into_owned();
    let mut cases = stated_limits(&text);
    assert!(!cases.is_empty(), "{bin} --help states no limit:\n{text}");
    cases.push((
        "--no-such-flag".to_owned(),
        String::new(),
        "unexpected argument".to_owned(),
    ));
    let cases: Vec<(Vec<&str>, &str)> = cases
        .iter()
        .map(|(flag, value, needle)| {
            let args = [flag.as_str(), value.as_str()];
            let args = args.into_iter().filter(|a| !a.is_empty()).collect();
            (args, needle.as_str())
        })
        .collect();
    let cases: Vec<(&[&str], &str)> = cases.iter().map(|(a, n)| (a.as_slice(), *n)).collect();
    assert_usage_errors(bin, &cases);
}

/// (flag, a value the help says is refused, what the refusal must say) for each promise in a
/// clap `--help` text: `from A to B` gives A-1 (if A > 0) and B+1; `at most B` gives B+1; both
/// give a word, which must be refused naming B; `possible values: …` (either of clap's two
/// layouts) gives a value not among them, which must be refused listing them.
fn stated_limits(help: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    // Each flag with the words of its help, in order.
    let mut flags: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        let is_flag = t.starts_with("--") || (t.starts_with('-') && t.contains(", --"));
        if is_flag {
            let name = t.split([' ', ',']).find(|w| w.starts_with("--"));
            let name = name.map(|w| w.split('=').next().unwrap_or(w).to_owned());
            // Short help puts the flag's text on its own line (long help, on the next ones).
            flags.push((name.unwrap_or_default(), t.to_owned()));
        } else if !line.starts_with(' ') {
            flags.push((String::new(), String::new()));
        } else if let Some((_, words)) = flags.last_mut() {
            words.push(' ');
            words.push_str(t);
        }
    }
    let number = |w: &str| labkit::cli::parse_size(w.trim_end_matches([']', ';', ')', ',']));
    for (flag, words) in flags.iter().filter(|(f, _)| !f.is_empty()) {
        let ws: Vec<&str> = words
            .split_whitespace()
            .map(|w| w.trim_start_matches('['))
            .collect();
        let mut push = |value: String, needle: String| out.push((flag.clone(), value, needle));
        let mut highest = None;
        for i in 0..ws.len() {
            match (ws[i], ws.get(i + 1), ws.get(i + 2), ws.get(i + 3)) {
                ("from", Some(a), Some(&"to"), Some(b)) => {
                    if let (Some(a), Some(b)) = (number(a), number(b)) {
                        if a > 0 {
                            push((a - 1).to_string(), format!("at least {a}"));
                        }
                        push((b + 1).to_string(), format!("at most {b}"));
                        highest = Some(b);
                    }
                }
                ("at", Some(&"most"), Some(b), _) if i == 0 || ws[i - 1] != "to" => {
                    if let Some(b) = number(b) {
                        push((b + 1).to_string(), format!("at most {b}"));
                        highest = Some(b);
                    }
                }
                ("possible", Some(v), ..) if v.starts_with("values") => {
                    push("sideways".to_owned(), "possible values".to_owned());
                }
                _ => {}
            }
        }
        if let Some(b) = highest {
            push("many".to_owned(), b.to_string());
        }
    }
    out
}

/// The end-to-end tests every topic has, as tests of the calling file: the promises of
/// `--help` kept ([`assert_stated_limits_refused`]), eight copies at once
/// ([`assert_crowd_passes`]), and, for a topic with a child, that child killed mid-run
/// ([`assert_peer_kill_reported`]) and SIGINT mid-run ([`assert_sigint_stops`]), while a run
/// started with `long` has a child that `peer` picks (by pid and command line), whose death
/// the error names as `killed`.
///
/// ```ignore
/// testkit::standard_tests!(BIN);
/// testkit::standard_tests!(BIN, long: LONG, peer: |_, cmd| cmd.contains("--role sink"), killed: "sink peer");
/// ```
#[macro_export]
macro_rules! standard_tests {
    ($bin:expr) => {
        #[test]
        fn every_promise_of_help_is_kept() {
            $crate::assert_stated_limits_refused($bin);
        }

        #[test]
        fn eight_copies_at_once_all_pass() {
            $crate::assert_crowd_passes($bin, &["--quick", "--json"], 8);
        }
    };
    ($bin:expr, long: $long:expr, peer: $peer:expr, killed: $killed:expr $(,)?) => {
        $crate::standard_tests!($bin);

        #[test]
        fn a_peer_killed_mid_run_is_reported_with_exit_1() {
            $crate::assert_peer_kill_reported($bin, $long, $peer, $killed);
        }

        #[test]
        fn sigint_mid_run_stops_cleanly_with_130() {
            $crate::assert_sigint_stops($bin, $long, $peer);
        }
    };
}

/// The flag-parser fuzz test of a topic's `Args` (see [`fuzz_flags`]), as a unit-test
/// module: `#[cfg(test)] testkit::fuzz_test!(Args);` beside the topic's `main`.
#[macro_export]
macro_rules! fuzz_test {
    ($args:ident) => {
        mod flag_tests {
            /// Random command lines: accepted, or refused with a message naming the limit, never
            /// a panic. `LAB_FUZZ_CASES=10000` for the full figure.
            #[test]
            fn random_flags_are_accepted_or_refused_never_a_panic() {
                $crate::fuzz_flags::<super::$args>($crate::fuzz_cases());
            }
        }
    };
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

/// Runs `bin args…` with `resource` held to `value`, soft and hard: the flags ask for more than
/// that leaves room for, so the run must be refused before it starts (`labkit::limits::check`),
/// as a usage error whose message names the limit with its value (`needle`).
pub fn assert_refused_under(
    bin: &str,
    resource: Resource,
    value: u64,
    args: &[&str],
    needle: &str,
) {
    let t = tag("limit");
    let done = run_under(bin, &t, resource, value, args);
    let err = done.stderr();
    assert_eq!(done.code(), Some(2), "{args:?} under {needle}: {err}");
    assert!(
        err.contains(needle) && err.contains("asks for"),
        "{args:?}: {err}"
    );
    assert!(done.out.stdout.is_empty(), "{args:?}: nothing on stdout");
    assert_clean(&t, done.pid);
}

/// Runs `bin args…` (tagged `tag`) with `resource` limited to `value`, soft and hard, to its end.
pub fn run_under(bin: &str, tag: &str, resource: Resource, value: u64, args: &[&str]) -> Done {
    let mut c = command(bin, tag, args);
    // SAFETY: runs in the child between fork and exec: setrlimit is one system call, and
    // allocates nothing.
    unsafe {
        c.pre_exec(move || {
            nix::sys::resource::setrlimit(resource, value, value).map_err(std::io::Error::from)
        });
    }
    finish(
        c.spawn().expect("start the binary"),
        Duration::from_secs(60),
    )
}

/// Runs `copies` copies of `bin args…` at once; every one must exit 0 with a Report whose
/// checks pass, and leave nothing behind.
pub fn assert_crowd_passes(bin: &str, args: &[&str], copies: usize) {
    assert_crowd_passes_in(Path::new("."), bin, args, copies);
}

/// [`assert_crowd_passes`], every copy started in `dir` (where a crash would leave its core).
pub fn assert_crowd_passes_in(dir: &Path, bin: &str, args: &[&str], copies: usize) {
    let t = tag("crowd");
    let children: Vec<Child> = (0..copies)
        .map(|_| {
            let mut copy = command(bin, &t, args);
            copy.current_dir(dir).spawn().expect("start a copy")
        })
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
        let found = labkit::procfs::children_of(child.id())
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
    let report = done.passing_report();
    assert_clean(&t, done.pid);
    report
}

/// How many random command lines [`fuzz_flags`] tries: `LAB_FUZZ_CASES`, else 100.
pub fn fuzz_cases() -> u32 {
    std::env::var("LAB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// Values a number flag is tried with: the limits of the lab's flags and just past them, zero,
/// negative, huge, non-numeric, empty, sizes with suffixes.
/// Names with the lab's prefix present now in /dev/shm (`pvt-…`, `sem.pvt-…`), in the temp dir,
/// and in /dev/mqueue where an mqueue file system is mounted, as paths: what a run could leave.
pub fn present() -> Vec<PathBuf> {
    let prefix = format!("{}-", labkit::PREFIX);
    let mut found = Vec::new();
    for dir in [
        PathBuf::from("/dev/shm"),
        std::env::temp_dir(),
        PathBuf::from("/dev/mqueue"),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let bare = name.strip_prefix("sem.").unwrap_or(&name);
            if bare.starts_with(&prefix) && entry.path() != labkit::names::ledger_dir() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

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

/// The limits a flag's help states ("from 8 to 1MiB"), and one past each.
fn limits_in_help(arg: &clap::Arg) -> Vec<String> {
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    let Some(rest) = help.split("from ").nth(1) else {
        return Vec::new();
    };
    let mut words = rest.split([' ', ']', ';', ')']);
    let (Some(lo), Some("to"), Some(hi)) = (words.next(), words.next(), words.next()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (text, step) in [(lo, -1i128), (hi, 1)] {
        if let Some(n) = labkit::cli::parse_size(text) {
            out.push(n.to_string());
            out.push((n as i128 + step).to_string());
        }
    }
    out
}

/// Fuzzes a topic's flag parser in-process with proptest: `cases` command lines built from the
/// parser's own arguments (each long flag, with a value from [`NUMBERS`], any integer, a short
/// random string, or one of its enum's values, or none at all; and unknown flags), each parsed
/// with `try_parse_from`. Every one must be accepted, or refused with a message; a refused
/// value must name the limit; none may panic (proptest catches the panic and shrinks the case
/// to the smallest command line that still fails). Returns (accepted, refused).
pub fn fuzz_flags<P: clap::Parser>(cases: u32) -> (u64, u64) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    use std::cell::Cell;

    let command = P::command();
    let name = command.get_name().to_owned();
    // The flags a person may type: hidden ones (a child's --role, --fd) are internal.
    let flags: Vec<(String, bool, Vec<String>)> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| {
            let long = a.get_long()?;
            if matches!(long, "help" | "version") {
                return None;
            }
            let mut values: Vec<String> = a
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_owned())
                .collect();
            values.extend(limits_in_help(a));
            Some((format!("--{long}"), a.get_action().takes_values(), values))
        })
        .collect();
    assert!(!flags.is_empty(), "{name}: no flag to fuzz");
    let one = |(flag, takes, values): (String, bool, Vec<String>)| -> BoxedStrategy<Vec<String>> {
        if !takes {
            return Just(vec![flag]).boxed();
        }
        let mut choices: Vec<BoxedStrategy<String>> = vec![
            proptest::sample::select(NUMBERS)
                .prop_map(str::to_owned)
                .boxed(),
            any::<i64>().prop_map(|n| n.to_string()).boxed(),
            "[a-zA-Z0-9. -]{0,8}".boxed(),
        ];
        if !values.is_empty() {
            choices.push(proptest::sample::select(values).boxed());
        }
        let value = proptest::strategy::Union::new(choices);
        let (flag2, flag3) = (flag.clone(), flag.clone());
        prop_oneof![
            6 => value.clone().prop_map(move |v| vec![flag.clone(), v]),
            3 => value.prop_map(move |v| vec![format!("{flag2}={v}")]),
            1 => Just(vec![flag3]), // The value missing.
        ]
        .boxed()
    };
    let arg = prop_oneof![
        11 => proptest::sample::select(flags).prop_flat_map(one),
        1 => Just(vec!["--no-such-flag".to_owned()]),
    ];
    let line = proptest::collection::vec(arg, 1..5)
        .prop_map(|groups| groups.into_iter().flatten().collect::<Vec<String>>());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let (accepted, refused) = (Cell::new(0u64), Cell::new(0u64));
    let result = TestRunner::new(config).run(&line, |args| {
        let argv = std::iter::once(name.clone()).chain(args.iter().cloned());
        match P::try_parse_from(argv) {
            Ok(_) => accepted.set(accepted.get() + 1),
            Err(e) => {
                refused.set(refused.get() + 1);
                let text = e.to_string();
                if text.trim().is_empty() {
                    return Err(TestCaseError::fail(format!(
                        "{args:?}: refused without a message"
                    )));
                }
                // The value parser's own words (clap wraps them in "invalid value … for …").
                let own = std::error::Error::source(&e).map(ToString::to_string);
                let names_limit = own.as_deref().is_some_and(|own| {
                    ["at least", "at most", "not a whole number"]
                        .iter()
                        .any(|w| own.contains(w))
                });
                if e.kind() == clap::error::ErrorKind::ValueValidation && !names_limit {
                    return Err(TestCaseError::fail(format!(
                        "{args:?}: the message names no limit: {text}"
                    )));
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: flag fuzzing failed: {e}");
    }
    (accepted.get(), refused.get())
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
    #[should_panic(expected = "flag fuzzing failed")]
    fn the_fuzzer_catches_a_panicking_parser() {
        super::fuzz_flags::<Fragile>(5_000);
    }

    /// A parser whose refusal does not say what is allowed.
    #[derive(clap::Parser, Debug)]
    struct Mute {
        #[arg(long)]
        size: Option<u64>,
    }

    #[test]
    #[should_panic(expected = "names no limit")]
    fn the_fuzzer_wants_refusals_to_name_the_limit() {
        super::fuzz_flags::<Mute>(5_000);
    }

    /// The common flags and one bounded number, as a topic has them.
    #[derive(clap::Parser, Debug)]
    struct Sound {
        #[command(flatten)]
        common: labkit::CommonArgs,
        #[arg(long, value_parser = labkit::cli::bounded(1, 100))]
        n: Option<u64>,
    }

    #[test]
    fn a_sound_parser_passes() {
        let (accepted, refused) = super::fuzz_flags::<Sound>(500);
        assert!(accepted > 0 && refused > 0, "{accepted} {refused}");
    }

    #[test]
    fn limits_are_read_from_help() {
        let help = "Usage: pipes [OPTIONS]\n\nOptions:\n  -n, --messages <N>\n          Round trips \
                    [default: 20000; --quick: 600; at most 10000000]\n      --bytes <N>\n          \
                    Bytes per message [default: 64; from 8 to\n          1MiB]\n      --json\n          \
                    Print only the Report\n";
        let got = super::stated_limits(help);
        let want = [
            ("--messages", "10000001", "at most 10000000"),
            ("--messages", "many", "10000000"),
            ("--bytes", "7", "at least 8"),
            ("--bytes", "1048577", "at most 1048576"),
            ("--bytes", "many", "1048576"),
        ];
        let got: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        assert_eq!(got, want);
    }
}
