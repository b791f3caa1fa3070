//! `cargo xtask torture`: every topic's bad paths, from the outside, with counts.
//!
//! * **kill**: each topic runs at its default size and is SIGKILLed at a random moment: the
//!   parent in even rounds, a child (found through `/proc`) in odd ones. A killed parent must
//!   leave no process (its children die with it) and nothing that `clean` cannot remove (its
//!   ledger lists what it had not unlinked yet); a surviving parent must exit 1 with a message
//!   that names the death, and leave nothing at all.
//! * **signals**: SIGINT or SIGTERM at a random moment: exit 130 or 143, nothing left.
//! * **crowd**: `--copies` copies of each topic at once (`--quick`): all pass, nothing left.
//! * **clean**: `clean` removes what a dead creator left and leaves a live creator's objects.
//!
//! POSIX message queues are looked for in an mqueue file system mounted on a private temporary
//! directory (where mounting is permitted; else the ledger is the only witness). The random
//! moments come from `--seed` (printed), so a failing round can be replayed.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::report::{Report, Status};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::workspace::{self, Snapshot, Topic};

/// A run that takes longer than this is hung.
const HANG_GUARD: Duration = Duration::from_secs(120);
/// Signals wait this long at least: a topic installs its handlers first thing, within a few ms.
const SIGNAL_EARLIEST: Duration = Duration::from_millis(15);

/// Where the random moments fall: from 2 ms after the start to 90% of a calibration run.
#[derive(Clone, Copy)]
struct Window {
    earliest: u64,
    latest: u64,
}

impl Window {
    fn new(run: Duration) -> Window {
        let latest = (run.as_millis() as u64 * 9 / 10).max(3);
        Window {
            earliest: 2,
            latest,
        }
    }

    fn pick(self, rng: &mut Rng) -> Duration {
        Duration::from_millis(rng.between(self.earliest, self.latest))
    }
}

const USAGE: &str =
    "usage: cargo xtask torture [--kills N] [--signals N] [--copies N] [--seed N] [TOPIC...]

  --kills N     SIGKILL rounds per topic, parent and child alternately [default: 2]
  --signals N   SIGINT/SIGTERM rounds per topic, alternately [default: 2]
  --copies N    copies of each topic run at once, --quick [default: 8]
  --refusals N  refused flag sets run end to end per topic [default: 5]
  --cases N     in-process parser fuzz cases per topic, run here through each topic's unit test
                [default: 0: `cargo test` already ran 100 per topic]
  --seed N      the seed of the random moments [default: from the clock]";

struct Options {
    cases: u32,
    refusals: u32,
    kills: u32,
    signals: u32,
    copies: usize,
    seed: u64,
    topics: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        cases: 0,
        refusals: 5,
        kills: 2,
        signals: 2,
        copies: 8,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        topics: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |max: u64| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{a} needs a number"))?;
            let n: u64 = v
                .parse()
                .map_err(|_| format!("{a} {v}: not a whole number"))?;
            if n > max {
                return Err(format!("{a} {n}: at most {max}"));
            }
            Ok(n)
        };
        match a.as_str() {
            "--kills" => o.kills = number(100_000)? as u32,
            "--signals" => o.signals = number(100_000)? as u32,
            "--copies" => o.copies = number(64)? as usize,
            "--refusals" => o.refusals = number(10_000)? as u32,
            "--cases" => o.cases = number(1_000_000)? as u32,
            "--seed" => o.seed = number(u64::MAX)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            topic => o.topics.push(topic.to_owned()),
        }
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<bool> {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xtask torture: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let topics = workspace::topics(&o.topics)?;
    if o.cases > 0 {
        fuzz_parsers(&topics, o.cases)?;
    }
    // Both builds before we become a subreaper: a daemon cargo starts must not look like a
    // topic's leftover.
    workspace::build_release(&topics)?;
    let debug = workspace::build_debug(&topics)?;
    let mq = MqueueView::mount();
    workspace::become_subreaper()?;
    workspace::say(&format!(
        "torture: {} topic(s), seed {}, message queues seen {}",
        topics.len(),
        o.seed,
        mq.describe()
    ));
    let mut rng = Rng(o.seed.max(1));
    let mut tally = Tally::default();
    let mut rows = vec![
        [
            "topic",
            "kills",
            "reported",
            "unnoticed",
            "cleaned",
            "signals",
            "refused",
            "crowd",
            "result",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for topic in &topics {
        let mut t = Tally::default();
        // The moments fall inside the run: how long a run lasts, from one untimed run.
        let calibration = Instant::now();
        if o.kills + o.signals > 0 {
            let e = finish(start(topic, &["--json"])?)?;
            judge_normal(topic, &e, "the calibration run", &mut t);
        }
        let window = Window::new(calibration.elapsed());
        for round in 0..o.kills {
            kill_round(topic, &mut rng, window, round % 2 == 1, &mq, &mut t)?;
        }
        for round in 0..o.signals {
            let sig = if round % 2 == 0 {
                Signal::SIGINT
            } else {
                Signal::SIGTERM
            };
            signal_round(topic, &mut rng, window, sig, &mq, &mut t)?;
        }
        refused_flags(topic, &mut rng, o.refusals, &mq, &mut t)?;
        if o.copies > 0 {
            crowd(topic, o.copies, &mq, &mut t)?;
        }
        rows.push(vec![
            topic.name.clone(),
            t.kills.to_string(),
            t.reported.to_string(),
            t.unnoticed.to_string(),
            t.cleaned.to_string(),
            t.signals.to_string(),
            t.refused.to_string(),
            t.copies.to_string(),
            if t.failures.is_empty() { "ok" } else { "FAIL" }.to_owned(),
        ]);
        tally.add(t);
    }
    let clean_ok = prove_clean(&mut tally)?;
    squat(&topics, &debug, &mq, &mut tally)?;
    workspace::say(&workspace::table(&rows));
    for u in &tally.unnoticed_what {
        workspace::say(&format!("  unnoticed (every check passed): {u}"));
    }
    for f in &tally.failures {
        workspace::say(&format!("  - {f}"));
    }
    workspace::say(&format!(
        "torture: {} kills landed ({} on a parent, {} on a child: {} reported by the parent \
         with exit 1, {} unnoticed with every check passing), {} runs ended before the kill or \
         signal (and passed); {} leftovers of killed parents, all removed by clean; {} signals; \
         {} refused flag sets; {} copies at once; {} runs against squatted names ({} met the \
         squat and refused it with exit 1, squatters untouched; {} use no name; {} used it for \
         a kind not planted and passed); clean {}; {} \
         failure(s), {} hang(s), {} panic(s)",
        tally.kills_parent + tally.kills_child,
        tally.kills_parent,
        tally.kills_child,
        tally.reported,
        tally.unnoticed,
        tally.finished_first,
        tally.cleaned,
        tally.signals,
        tally.refused,
        tally.copies,
        tally.squats,
        tally.squats_refused,
        tally.squats_unused,
        tally.squats - tally.squats_refused - tally.squats_unused,
        if clean_ok { "proved" } else { "FAILED" },
        tally.failures.len(),
        tally.hangs,
        tally.panics
    ));
    Ok(tally.failures.is_empty() && clean_ok)
}

/// Counts over the rounds, and what went wrong.
#[derive(Default)]
struct Tally {
    kills: u64,
    kills_parent: u64,
    kills_child: u64,
    reported: u64,
    unnoticed_what: Vec<String>,
    unnoticed: u64,
    finished_first: u64,
    cleaned: u64,
    signals: u64,
    copies: u64,
    refused: u64,
    squats: u64,
    squats_refused: u64,
    squats_unused: u64,
    hangs: u64,
    panics: u64,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, t: Tally) {
        self.kills += t.kills;
        self.kills_parent += t.kills_parent;
        self.kills_child += t.kills_child;
        self.unnoticed_what.extend(t.unnoticed_what);
        self.reported += t.reported;
        self.unnoticed += t.unnoticed;
        self.finished_first += t.finished_first;
        self.cleaned += t.cleaned;
        self.signals += t.signals;
        self.copies += t.copies;
        self.refused += t.refused;
        self.squats += t.squats;
        self.squats_refused += t.squats_refused;
        self.squats_unused += t.squats_unused;
        self.hangs += t.hangs;
        self.panics += t.panics;
        self.failures.extend(t.failures);
    }

    fn fail(&mut self, topic: &Topic, what: String) {
        self.failures.push(format!("{}: {what}", topic.name));
    }
}

/// xorshift64*: enough to spread the moments, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// An mqueue file system on a private temporary directory, unmounted on drop; `None` where
/// mounting is not permitted.
struct MqueueView(Option<PathBuf>);

impl MqueueView {
    fn mount() -> MqueueView {
        use nix::mount::{MsFlags, mount};
        // A mount namespace of our own (the topics we start share it): the mount is gone with
        // us however we end, and the host's mount table never sees it.
        if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_err()
            || mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .is_err()
        {
            return MqueueView(None);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("xtask-mqueue-{}-{nanos:08x}", std::process::id()));
        if std::fs::create_dir(&dir).is_err() {
            return MqueueView(None);
        }
        if mount(
            Some("mqueue"),
            &dir,
            Some("mqueue"),
            MsFlags::empty(),
            None::<&str>,
        )
        .is_err()
        {
            let _ = std::fs::remove_dir(&dir);
            return MqueueView(None);
        }
        MqueueView(Some(dir))
    }

    fn describe(&self) -> String {
        match &self.0 {
            Some(d) => format!(
                "through an mqueue mount at {} (in a private mount namespace)",
                d.display()
            ),
            None if std::path::Path::new("/dev/mqueue").is_dir() => {
                "through /dev/mqueue".to_owned()
            }
            None => "only through the ledger (mounting mqueue is not permitted)".to_owned(),
        }
    }

    /// The lab's queues present now.
    fn names(&self) -> BTreeSet<String> {
        let Some(dir) = &self.0 else {
            return BTreeSet::new();
        };
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("{}-", labkit::PREFIX)))
                    .map(|n| format!("mq /{n}"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for MqueueView {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = nix::mount::umount(dir);
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Everything the lab's runs could leave, queues included.
fn everything(mq: &MqueueView) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let snap = Snapshot::take();
    all.extend(snap.new_since(&Snapshot::empty()));
    all.extend(mq.names());
    all
}

/// A topic running at default size, its stderr drained in a thread.
struct Running {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
    stdout: std::thread::JoinHandle<String>,
}

fn start(topic: &Topic, args: &[&str]) -> Result<Running> {
    start_with(topic, args, &[])
}

/// Starts a topic with `env` added to its environment, its output drained in threads.
fn start_with(topic: &Topic, args: &[&str], env: &[(&str, &str)]) -> Result<Running> {
    let mut child = Command::new(&topic.binary)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", topic.binary.display()))?;
    let stderr = workspace::drain(child.stderr.take().expect("piped"));
    let stdout = workspace::drain(child.stdout.take().expect("piped"));
    Ok(Running {
        child,
        stderr,
        stdout,
    })
}

/// How a run ended.
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
    stderr: String,
    stdout: String,
    hung: bool,
    leftovers: Vec<String>,
}

fn finish(mut r: Running) -> Result<Ended> {
    let (status, hung) = wait_status(&mut r)?;
    // Leftovers first: one may hold the output pipes open, and the readers would wait for it.
    let leftovers = workspace::reap_leftovers(Duration::from_secs(2));
    Ok(collect(r, status, hung, leftovers))
}

/// Waits (under the hang guard) for a run's status, without reaping anything else.
fn wait_status(r: &mut Running) -> Result<(std::process::ExitStatus, bool)> {
    Ok(
        match labkit::child::wait_timeout(&mut r.child, HANG_GUARD)? {
            Some(s) => (s, false),
            None => {
                let _ = r.child.kill();
                (r.child.wait()?, true)
            }
        },
    )
}

/// The ended run's output, once nothing can hold its pipes any more.
fn collect(
    r: Running,
    status: std::process::ExitStatus,
    hung: bool,
    leftovers: Vec<String>,
) -> Ended {
    Ended {
        code: status.code(),
        signal: status.signal(),
        stderr: r.stderr.join().unwrap_or_default(),
        stdout: r.stdout.join().unwrap_or_default(),
        hung,
        leftovers,
    }
}

/// Sleeps until `at` after `started`, or until the run ends; whether it still runs.
fn sleep_until(r: &mut Running, started: Instant, at: Duration) -> Result<bool> {
    while started.elapsed() < at {
        if r.child.try_wait()?.is_some() {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(r.child.try_wait()?.is_none())
}

fn kill_round(
    topic: &Topic,
    rng: &mut Rng,
    window: Window,
    child_victim: bool,
    mq: &MqueueView,
    t: &mut Tally,
) -> Result<()> {
    let before = everything(mq);
    let started = Instant::now();
    let mut r = start(topic, &["--json"])?;
    let parent = r.child.id();
    let at = window.pick(rng);
    t.kills += 1;
    if !sleep_until(&mut r, started, at)? {
        return finished_first(topic, r, &before, mq, t, "a kill");
    }
    // A child is not ours to wait for: hold it by a pidfd, and check it is still the topic's
    // child, so a recycled pid can never make us kill a stranger.
    // Living children only: a zombie's death is already done (its command line is empty).
    let children: Vec<u32> = labkit::procfs::children_of(parent)
        .into_iter()
        .filter(|c| std::fs::read(format!("/proc/{c}/cmdline")).is_ok_and(|b| !b.is_empty()))
        .collect();
    let chosen = (child_victim && !children.is_empty())
        .then(|| children[rng.between(0, children.len() as u64 - 1) as usize]);
    let victim = chosen.unwrap_or(parent);
    let cmdline = std::fs::read_to_string(format!("/proc/{victim}/cmdline"))
        .unwrap_or_default()
        .replace('\0', " ");
    let sent = if chosen.is_some() {
        labkit::child::pidfd_open(victim).is_ok_and(|fd| {
            labkit::procfs::parent_of(victim) == Some(parent) && pidfd_kill(&fd).is_ok()
        })
    } else {
        kill(Pid::from_raw(victim as i32), Signal::SIGKILL).is_ok()
    };
    if !sent {
        return finished_first(topic, r, &before, mq, t, "a kill");
    }
    let e = finish(r)?;
    let whom = if chosen.is_some() {
        t.kills_child += 1;
        "a child"
    } else {
        t.kills_parent += 1;
        "the parent"
    };
    let what = format!(
        "SIGKILL at {} ms to {whom} ({})",
        at.as_millis(),
        cmdline.trim()
    );
    judge_common(topic, &e, &what, t);
    if chosen.is_none() {
        if e.signal != Some(libc::SIGKILL) && !e.hung {
            // It ended on its own at that very moment: then it must have ended well.
            judge_normal(topic, &e, &what, t);
        }
        // What the dead creator had not unlinked yet is for `clean`, and must be all gone after.
        let left = new_since(mq, &before);
        if !left.is_empty() {
            labkit::names::clean_dead().context("clean")?;
            let still = new_since(mq, &before);
            t.cleaned += (left.len() - still.len()) as u64;
            if !still.is_empty() {
                t.fail(topic, format!("{what}: clean left {still:?}"));
            }
        }
        return Ok(());
    }
    fail_if_left(topic, mq, &before, &format!("{what}: the parent"), t);
    // The words the lab's messages use for a peer's death.
    let names_death = [
        "SIGKILL",
        "died",
        "was killed",
        "lost its connection",
        "hung up",
    ]
    .iter()
    .any(|w| e.stderr.contains(w) || failed_checks(&e.stdout).contains(w));
    match e.code {
        Some(1) if names_death => t.reported += 1,
        Some(1) => t.fail(
            topic,
            format!(
                "{what}: exit 1 without naming the death: {}",
                last_line(&e.stderr)
            ),
        ),
        // A child whose death is the lesson (killed on purpose by the topic anyway), or one
        // that had done its part: the run passed every check. Counted, and listed apart.
        Some(0) if report_passed(&e.stdout) => {
            t.unnoticed += 1;
            t.unnoticed_what.push(format!("{}: {what}", topic.name));
        }
        other => t.fail(
            topic,
            format!("{what}: exit {other:?}: {}", last_line(&e.stderr)),
        ),
    }
    Ok(())
}

/// SIGKILL through a pidfd: it reaches that very process or nothing.
fn pidfd_kill(fd: &std::os::fd::OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a null siginfo and flags;
    // it touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A run that ended before we could act: it must have ended as an untouched run does.
fn finished_first(
    topic: &Topic,
    r: Running,
    before: &BTreeSet<String>,
    mq: &MqueueView,
    t: &mut Tally,
    act: &str,
) -> Result<()> {
    t.finished_first += 1;
    let e = finish(r)?;
    judge_normal(topic, &e, &format!("a run that ended before {act}"), t);
    fail_if_left(
        topic,
        mq,
        before,
        &format!("a run that ended before {act}"),
        t,
    );
    Ok(())
}

fn signal_round(
    topic: &Topic,
    rng: &mut Rng,
    window: Window,
    sig: Signal,
    mq: &MqueueView,
    t: &mut Tally,
) -> Result<()> {
    let before = everything(mq);
    let started = Instant::now();
    let mut r = start(topic, &["--json"])?;
    // Not before the handlers are in place (the first thing a topic does, within a few ms).
    let at = window.pick(rng).max(SIGNAL_EARLIEST);
    t.signals += 1;
    if !sleep_until(&mut r, started, at)? {
        return finished_first(topic, r, &before, mq, t, "the signal");
    }
    kill(Pid::from_raw(r.child.id() as i32), sig).context("kill")?;
    let e = finish(r)?;
    let what = format!("{} at {} ms", sig.as_str(), at.as_millis());
    judge_common(topic, &e, &what, t);
    let expected = 128 + sig as i32;
    match e.code {
        Some(c) if c == expected => {}
        // It ended between our look and the signal: then as an untouched run does.
        Some(0) => judge_normal(topic, &e, &what, t),
        other => t.fail(
            topic,
            format!(
                "{what}: exit {other:?}, expected {expected}: {}",
                last_line(&e.stderr)
            ),
        ),
    }
    fail_if_left(topic, mq, &before, &what, t);
    Ok(())
}

fn crowd(topic: &Topic, copies: usize, mq: &MqueueView, t: &mut Tally) -> Result<()> {
    let before = everything(mq);
    let runs: Vec<Running> = (0..copies)
        .map(|_| start(topic, &["--quick", "--json"]))
        .collect::<Result<_>>()?;
    let mut runs = runs;
    let statuses: Vec<_> = runs.iter_mut().map(wait_status).collect::<Result<_>>()?;
    let leftovers = workspace::reap_leftovers(Duration::from_secs(2));
    if !leftovers.is_empty() {
        t.fail(
            topic,
            format!("{copies} copies at once left processes: {leftovers:?}"),
        );
    }
    let ended: Vec<Ended> = runs
        .into_iter()
        .zip(statuses)
        .map(|(r, (status, hung))| collect(r, status, hung, Vec::new()))
        .collect();
    for e in ended {
        t.copies += 1;
        judge_normal(topic, &e, &format!("one of {copies} copies at once"), t);
    }
    fail_if_left(topic, mq, &before, &format!("{copies} copies at once"), t);
    Ok(())
}

/// Runs each topic's in-process flag fuzzing (its `flag_tests` unit test) with `cases` cases.
fn fuzz_parsers(topics: &[Topic], cases: u32) -> Result<()> {
    let mut cmd = workspace::cargo();
    cmd.args(["test", "--quiet", "--bins"])
        .current_dir(workspace::root())
        .env("LAB_FUZZ_CASES", cases.to_string());
    for t in topics {
        cmd.args(["-p", &t.name]);
    }
    cmd.args(["flag_tests"]);
    eprintln!("xtask torture: {cases} parser cases per topic (cargo test --bins flag_tests)");
    if !cmd.status().context("cargo test")?.success() {
        bail!("the flag fuzzing failed (see above)");
    }
    workspace::say(&format!(
        "torture: {} in-process parser cases ({cases} per topic): no panic, every refusal named its limit",
        cases as u64 * topics.len() as u64
    ));
    Ok(())
}

/// The long flags a topic's `--help` lists, and whether each takes a value.
fn flags_of(topic: &Topic) -> Result<Vec<(String, bool)>> {
    let out = Command::new(&topic.binary)
        .arg("--help")
        .output()
        .with_context(|| format!("{} --help", topic.name))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut flags = Vec::new();
    for line in text
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let w = w.trim_end_matches(',');
            if let Some(name) = w.strip_prefix("--") {
                if name != "help" && !name.is_empty() {
                    let takes = words.get(i + 1).is_some_and(|n| n.starts_with('<'));
                    flags.push((format!("--{name}"), takes));
                }
                break;
            }
        }
    }
    Ok(flags)
}

/// Flag sets no topic accepts, run end to end: exit 2 with a short message, never a panic or a
/// hang, nothing left.
fn refused_flags(
    topic: &Topic,
    rng: &mut Rng,
    count: u32,
    mq: &MqueueView,
    t: &mut Tally,
) -> Result<()> {
    const BAD: &[&str] = &["abc", "-1", "99999999999999999999999", "1.5", "", "bogus"];
    let with_value: Vec<String> = flags_of(topic)?
        .into_iter()
        .filter(|(_, takes)| *takes)
        .map(|(f, _)| f)
        .collect();
    for _ in 0..count {
        let before = everything(mq);
        let mut args = vec!["--quick".to_owned(), "--json".to_owned()];
        if with_value.is_empty() || rng.between(0, 5) == 0 {
            args.push("--no-such-flag".to_owned());
        } else {
            args.push(with_value[rng.between(0, with_value.len() as u64 - 1) as usize].clone());
            args.push(BAD[rng.between(0, BAD.len() as u64 - 1) as usize].to_owned());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = finish(start(topic, &argv)?)?;
        t.refused += 1;
        let what = format!("flags {:?}", &args[2..]);
        judge_common(topic, &e, &what, t);
        let lines = e.stderr.lines().filter(|l| !l.trim().is_empty()).count();
        if e.code != Some(2) || lines == 0 || lines > 6 {
            t.fail(
                topic,
                format!(
                    "{what}: exit {:?} with {lines} line(s): {}",
                    e.code,
                    last_line(&e.stderr)
                ),
            );
        }
        fail_if_left(topic, mq, &before, &what, t);
    }
    Ok(())
}

/// What the lab's runs left since `before`.
fn new_since(mq: &MqueueView, before: &BTreeSet<String>) -> Vec<String> {
    everything(mq).difference(before).cloned().collect()
}

/// Fails `what` if anything was left since `before`.
fn fail_if_left(
    topic: &Topic,
    mq: &MqueueView,
    before: &BTreeSet<String>,
    what: &str,
    t: &mut Tally,
) {
    let left = new_since(mq, before);
    if !left.is_empty() {
        t.fail(topic, format!("{what}: left {left:?}"));
    }
}

/// A run nothing was done to: exit 0 with a Report whose every check passed.
fn judge_normal(topic: &Topic, e: &Ended, what: &str, t: &mut Tally) {
    judge_common(topic, e, what, t);
    if e.code != Some(0) || !report_passed(&e.stdout) {
        t.fail(
            topic,
            format!(
                "{what}: exit {:?} or a failed check: {}",
                e.code,
                last_line(&e.stderr)
            ),
        );
    }
}

/// What every round checks: no hang, no panic, no process left behind.
fn judge_common(topic: &Topic, e: &Ended, what: &str, t: &mut Tally) {
    if e.hung {
        t.hangs += 1;
        t.fail(
            topic,
            format!(
                "{what}: still running after {} s (hang guard)",
                HANG_GUARD.as_secs()
            ),
        );
    }
    if e.code == Some(101) || e.stderr.contains("panicked") {
        t.panics += 1;
        t.fail(topic, format!("{what}: panicked: {}", last_line(&e.stderr)));
    }
    if !e.leftovers.is_empty() {
        t.fail(
            topic,
            format!("{what}: processes left behind: {:?}", e.leftovers),
        );
    }
}

/// The details of a Report's failed checks, where a topic reports a death it observed.
fn failed_checks(stdout: &str) -> String {
    serde_json::from_str::<Report>(stdout)
        .map(|r| {
            r.checks
                .iter()
                .filter(|c| c.status == Status::Fail)
                .map(|c| format!("{}: {}\n", c.name, c.detail))
                .collect()
        })
        .unwrap_or_default()
}

fn report_passed(stdout: &str) -> bool {
    serde_json::from_str::<Report>(stdout)
        .is_ok_and(|r| r.problems().is_empty() && r.checks.iter().all(|c| c.status != Status::Fail))
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no message)")
        .trim()
        .to_owned()
}

/// `clean` removes a dead creator's object and leaves a live one's: one of each, made here.
fn prove_clean(t: &mut Tally) -> Result<bool> {
    // A dead creator: a copy of xtask that creates an object and exits without unlinking it.
    let exe = std::env::current_exe().context("current_exe")?;
    let out = Command::new(exe)
        .arg("torture-leave-one")
        .stderr(Stdio::inherit())
        .output()
        .context("run xtask torture-leave-one")?;
    let dead_name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || dead_name.is_empty() {
        bail!("torture-leave-one did not leave an object");
    }
    // A live creator: this process.
    let mut live = labkit::names::reserve(labkit::names::Kind::Shm)?;
    create_shm(live.name())?;
    live.mark_created();
    let in_shm = |name: &str| {
        PathBuf::from("/dev/shm")
            .join(name.trim_start_matches('/'))
            .exists()
    };
    let dead_was_there = in_shm(&dead_name);
    labkit::names::clean_dead().context("clean")?;
    let ok = dead_was_there && !in_shm(&dead_name) && in_shm(live.name());
    if !ok {
        t.failures.push(format!(
            "clean: dead creator's {dead_name} {} (was there: {dead_was_there}); live {} {}",
            if in_shm(&dead_name) {
                "NOT removed"
            } else {
                "removed"
            },
            live.name(),
            if in_shm(live.name()) {
                "kept"
            } else {
                "REMOVED"
            }
        ));
    }
    live.unlink()?;
    Ok(ok)
}

/// The ways a name can be squatted before a topic takes it.
#[derive(Clone, Copy, Debug)]
enum Squat {
    /// Objects of every kind, mode 0666 (a queue too, where mqueue is mounted).
    WorldWritable,
    /// Symbolic links pointing at a file of ours.
    Symlink,
    /// Objects owned by another user (nobody), mode 0600.
    OtherOwner,
}

/// Runs every topic (debug build, `--quick`) with its next name made predictable and already
/// taken, every kind at once: it must never open what it did not create (`O_EXCL`): it picks
/// another name or stops with exit 1 saying why; the squatter's objects stay as they were.
fn squat(topics: &[Topic], binaries: &[PathBuf], mq: &MqueueView, t: &mut Tally) -> Result<()> {
    let bait = Planted(vec![std::env::temp_dir().join(format!(
        "xtask-bait-{}-{}",
        std::process::id(),
        t.squats
    ))]);
    {
        use std::io::Write;
        // create_new: never through a link someone left at that path.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&bait.0[0])
            .and_then(|mut f| f.write_all(BAIT))
            .context("create the bait file")?;
    }
    let can_chown = nix::unistd::geteuid().is_root();
    for (topic, binary) in topics.iter().zip(binaries) {
        for how in [Squat::WorldWritable, Squat::Symlink, Squat::OtherOwner] {
            if matches!(how, Squat::OtherOwner) && !can_chown {
                continue; // Only root can give an object to another user; said in the summary.
            }
            let token = format!("squat-{}-{}", std::process::id(), t.squats);
            let planted = plant(&token, how, &bait.0[0], mq)?;
            let before = fingerprints(&planted.0);
            let others = everything(mq);
            let mut debug = topic.clone();
            debug.binary = binary.clone();
            // The variable is read by the topic's first reservation only.
            let e = finish_with_env(&debug, &token)?;
            t.squats += 1;
            let what = format!("names squatted ({how:?})");
            judge_common(topic, &e, &what, t);
            let met = e.stderr.contains("labkit: using the test name");
            let refused = ["exists", "EEXIST", "taken"]
                .iter()
                .any(|w| e.stderr.contains(w));
            match (met, e.code) {
                (false, Some(0)) if report_passed(&e.stdout) => t.squats_unused += 1,
                (true, Some(1)) if refused => t.squats_refused += 1,
                // Another name picked: allowed, if the run passed.
                (true, Some(0)) if report_passed(&e.stdout) => {}
                (_, other) => t.fail(
                    topic,
                    format!("{what}: exit {other:?}: {}", last_line(&e.stderr)),
                ),
            }
            if fingerprints(&planted.0) != before {
                t.fail(
                    topic,
                    format!("{what}: a squatted object was changed or removed"),
                );
            }
            if std::fs::read(&bait.0[0]).ok().as_deref() != Some(BAIT) {
                t.fail(
                    topic,
                    format!("{what}: the file behind a symlink was written"),
                );
            }
            drop(planted);
            fail_if_left(topic, mq, &others, &what, t);
        }
    }
    Ok(())
}

const BAIT: &[u8] = b"not yours\n";

/// Paths planted by the harness, removed on every way out (no ledger lists them).
struct Planted(Vec<PathBuf>);

impl Drop for Planted {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir(p));
        }
    }
}

/// Inode, mode, owner, size and modification time (s, ns) of a path, not following links.
type Fingerprint = (u64, u32, u32, u64, i64, i64);

/// What would change if a topic opened, truncated, wrote, re-owned or replaced an object.
fn fingerprints(paths: &[PathBuf]) -> Vec<Option<Fingerprint>> {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|p| {
            std::fs::symlink_metadata(p)
                .map(|m| {
                    (
                        m.ino(),
                        m.mode(),
                        m.uid(),
                        m.size(),
                        m.mtime(),
                        m.mtime_nsec(),
                    )
                })
                .ok()
        })
        .collect()
}

/// Runs a topic `--quick --json` with `LABKIT_TEST_NEXT_NAME=token`.
fn finish_with_env(topic: &Topic, token: &str) -> Result<Ended> {
    let env = [(labkit::names::TEST_NEXT_NAME_ENV, token)];
    finish(start_with(topic, &["--quick", "--json"], &env)?)
}

/// Plants every kind of object under the name `pvt-test-<token>`.
fn plant(token: &str, how: Squat, bait: &std::path::Path, mq: &MqueueView) -> Result<Planted> {
    use std::os::unix::fs::PermissionsExt;
    let name = format!("{}-test-{token}", labkit::PREFIX);
    let shm = PathBuf::from("/dev/shm").join(&name);
    let sem = PathBuf::from("/dev/shm").join(format!("sem.{name}"));
    let dir = std::env::temp_dir().join(&name);
    // Each path joins the guard as soon as it exists, so an error below removes it too.
    let mut planted = Planted(Vec::new());
    match how {
        Squat::Symlink => {
            for p in [&shm, &sem, &dir] {
                std::os::unix::fs::symlink(bait, p)
                    .with_context(|| format!("symlink {}", p.display()))?;
                planted.0.push(p.clone());
            }
        }
        Squat::WorldWritable | Squat::OtherOwner => {
            let mode = if matches!(how, Squat::WorldWritable) {
                0o666
            } else {
                0o600
            };
            for p in [&shm, &sem] {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(p)
                    .with_context(|| format!("create {}", p.display()))?;
                planted.0.push(p.clone());
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
            }
            std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
            planted.0.push(dir.clone());
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o111))?;
            if matches!(how, Squat::OtherOwner) {
                for p in &planted.0 {
                    // nobody (65534).
                    std::os::unix::fs::chown(p, Some(65534), Some(65534))
                        .with_context(|| format!("chown {}", p.display()))?;
                }
            }
        }
    }
    if let Some(mount) = &mq.0 {
        // A queue of that name, for the mqueue topic, in every variant a queue can have.
        if !matches!(how, Squat::Symlink) {
            let q = mount.join(&name);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&q)
                .with_context(|| format!("create queue {}", q.display()))?;
            planted.0.push(q.clone());
            let mode = if matches!(how, Squat::WorldWritable) {
                0o666
            } else {
                0o600
            };
            std::fs::set_permissions(&q, std::fs::Permissions::from_mode(mode))?;
            if matches!(how, Squat::OtherOwner) {
                std::os::unix::fs::chown(&q, Some(65534), Some(65534))
                    .with_context(|| format!("chown {}", q.display()))?;
            }
        }
    }
    Ok(planted)
}

/// Creates the POSIX shared memory object `name` (`O_EXCL`, 0600).
fn create_shm(name: &str) -> Result<()> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    nix::sys::mman::shm_open(
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .with_context(|| format!("shm_open {name}"))?;
    Ok(())
}

/// The hidden `torture-leave-one` command: creates a ledgered object, prints its name, and
/// exits without unlinking it, as a creator killed at that moment would.
pub fn leave_one() -> Result<bool> {
    let mut r = labkit::names::reserve(labkit::names::Kind::Shm)?;
    create_shm(r.name())?;
    r.mark_created();
    println!("{}", r.name());
    std::mem::forget(r); // No unlink, no ledger update: a crash, as far as clean can tell.
    Ok(true)
}
