//! The limits stage (`--limits`): every topic's `--quick` run under a resource limit of the
//! machine, each set soft and hard in the child before `exec`, and what became of it.
//!
//! * `RLIMIT_NOFILE` at a few values around what the topics need;
//! * `RLIMIT_AS` from 16 MiB to plenty, and per topic a value low enough that a thread's stack
//!   or a mapping fails ([`AS_PER_TOPIC`]: lower, a heap allocation fails first and aborts);
//! * `RLIMIT_MSGQUEUE` at a few bytes, and the quota used up by another queue of this user (one
//!   the stage holds while the run's limit is about what that queue is charged);
//! * process and thread creation capped by a pids cgroup (`pids.max`), where one can be made
//!   (this stage runs as root, whom `RLIMIT_NPROC` does not bind); skipped, saying why, else;
//! * a tiny `/dev/shm`: a tmpfs of a few KiB mounted over it in a private mount namespace; what
//!   the run leaves in it is listed inside the namespace, before it ends.
//!
//! A run passes (exit 0), or refuses cleanly: exit 1 or 2 with a message that names the
//! resource and the limit's value. Then, for each topic with flags that ask for a resource,
//! flags that ask for more than a limit allows ([`ASKS`]): these must be refused before the
//! run starts, with exit 2 and a message that names the limit. Anything else is counted: an abort (Rust's answer to a heap
//! allocation that fails), a crash by another signal, a panic, a hang, a leftover, or an error
//! that does not say which limit it met.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::process::CommandExt;

use super::*;

/// One limit a run is held to.
#[derive(Clone, Copy)]
enum Limit {
    /// `RLIMIT_NOFILE`: descriptors.
    Nofile(u64),
    /// `RLIMIT_AS`: bytes of address space.
    AddressSpace(u64),
    /// `RLIMIT_MSGQUEUE`: bytes of message queues.
    MsgQueue(u64),
    /// The same quota, used up by another queue of this user: the stage holds a queue of
    /// 10 messages of 8 KiB (what `fs.mqueue` allows by default) while the run's limit is
    /// this many bytes, about what that queue alone is charged.
    MsgQueueUsed(u64),
    /// A pids cgroup's `pids.max`: processes and threads.
    Pids(u64),
    /// A tmpfs of this many bytes over `/dev/shm`.
    TinyShm(u64),
    /// `RLIMIT_AS` at the topic's value in [`AS_PER_TOPIC`].
    AddressSpaceOfTopic,
}

/// Per topic, an `RLIMIT_AS` at which a thread's stack or a mapping fails (or flags ask for
/// more than it leaves), found by trying values here: the run must refuse cleanly. Lower, a heap
/// allocation fails first, and Rust aborts.
const AS_PER_TOPIC: [(&str, u64); 11] = [
    ("condvar", 8),
    ("isolation", 6),
    ("mqueue", 8),
    ("mutex", 8),
    ("parallel", 12),
    ("pipes", 8),
    ("semaphore", 8),
    ("shm", 24),
    ("sockets", 12),
    ("spawn", 16),
    ("switch", 12),
];

/// The limits tried, in order.
const LIMITS: [Limit; 16] = [
    Limit::Nofile(8),
    Limit::Nofile(16),
    Limit::Nofile(32),
    Limit::AddressSpace(16 << 20),
    Limit::AddressSpace(24 << 20),
    Limit::AddressSpace(64 << 20),
    Limit::AddressSpace(512 << 20),
    Limit::AddressSpaceOfTopic,
    Limit::MsgQueue(256),
    Limit::MsgQueueUsed(10 * 8192),
    Limit::Pids(2),
    Limit::Pids(8),
    Limit::Pids(24),
    Limit::TinyShm(16 << 10),
    Limit::TinyShm(256 << 10),
    Limit::Nofile(1024),
];

/// Per topic, flags that ask for more than a limit allows, and that limit: the run must be
/// refused before it starts (exit 2), naming the limit. Topics with no such flag have none.
const ASKS: [(&str, &[&str], Limit); 8] = [
    (
        "isolation",
        &["--pages", "262144"],
        Limit::AddressSpace(512 << 20),
    ),
    (
        "mqueue",
        &["--depth", "10", "--bytes", "8192"],
        Limit::MsgQueue(256),
    ),
    ("mutex", &["--parties", "64"], Limit::Pids(8)),
    ("parallel", &["--workers", "32"], Limit::Pids(8)),
    ("semaphore", &["--producers", "8"], Limit::Pids(8)),
    ("shm", &["--bytes", "1048576"], Limit::TinyShm(256 << 10)),
    ("sockets", &["--connections", "1000"], Limit::Nofile(256)),
    (
        "spawn",
        &["--max-rss", "4096"],
        Limit::AddressSpace(1 << 30),
    ),
];

impl Limit {
    /// The limit itself for `topic`: [`Limit::AddressSpaceOfTopic`] becomes its value.
    fn for_topic(self, topic: &str) -> Limit {
        match (self, AS_PER_TOPIC.iter().find(|(t, _)| *t == topic)) {
            (Limit::AddressSpaceOfTopic, Some((_, mib))) => Limit::AddressSpace(mib << 20),
            (Limit::AddressSpaceOfTopic, None) => Limit::AddressSpace(16 << 20),
            (limit, _) => limit,
        }
    }

    fn name(self) -> String {
        match self {
            Limit::AddressSpaceOfTopic => "RLIMIT_AS per topic".to_owned(),
            Limit::Nofile(n) => format!("RLIMIT_NOFILE={n}"),
            Limit::AddressSpace(b) => format!("RLIMIT_AS={}MiB", b >> 20),
            Limit::MsgQueue(b) => format!("RLIMIT_MSGQUEUE={b}"),
            Limit::MsgQueueUsed(b) => format!("RLIMIT_MSGQUEUE={b},used"),
            Limit::Pids(n) => format!("pids.max={n}"),
            Limit::TinyShm(b) => format!("/dev/shm={}KiB", b >> 10),
        }
    }

    /// Words one of which a message that names this limit contains, and its value as written.
    fn named_by(self) -> (&'static [&'static str], String) {
        match self {
            Limit::Nofile(n) => (&["RLIMIT_NOFILE", "open files"], n.to_string()),
            Limit::AddressSpace(b) => (&["RLIMIT_AS"], b.to_string()),
            Limit::MsgQueue(b) | Limit::MsgQueueUsed(b) => (&["RLIMIT_MSGQUEUE"], b.to_string()),
            Limit::Pids(n) => (&["pids.max", "RLIMIT_NPROC", "threads-max"], n.to_string()),
            Limit::TinyShm(b) => (&["/dev/shm", "ENOSPC", "No space"], (b >> 10).to_string()),
            Limit::AddressSpaceOfTopic => unreachable!("resolved by for_topic first"),
        }
    }
}

/// How one run under one limit ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Refused,
    Aborted,
    Crashed,
    Panicked,
    Hung,
    Unnamed,
}

impl Outcome {
    fn letter(self) -> &'static str {
        match self {
            Outcome::Passed => "ok",
            Outcome::Refused => "refused",
            Outcome::Aborted => "ABORT",
            Outcome::Crashed => "CRASH",
            Outcome::Panicked => "PANIC",
            Outcome::Hung => "HANG",
            Outcome::Unnamed => "unnamed",
        }
    }
}

/// A pids cgroup of our own (cgroup v1 or v2), removed on drop; `None` where none can be made.
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    fn make() -> Option<PidsCgroup> {
        // cgroup v1 has a pids hierarchy of its own; v2 one tree, whose controllers say.
        let v1 = PathBuf::from("/sys/fs/cgroup/pids");
        let v2 = PathBuf::from("/sys/fs/cgroup");
        let base = if v1.join("cgroup.procs").exists() {
            v1
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "pids"))
        {
            v2
        } else {
            return None;
        };
        let dir = base.join(format!("xtask-limits-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        dir.join("pids.max").exists().then_some(PidsCgroup(dir))
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The tally of the stage: per outcome, how many runs; and the lines that say what went wrong.
#[derive(Default)]
pub(super) struct LimitsTally {
    counts: BTreeMap<&'static str, u64>,
    /// What fails the stage: crashes, panics, hangs, leftovers, errors that name no limit.
    pub(super) bad: Vec<String>,
    /// Aborts: a heap allocation that fails aborts, by Rust's design. Listed, not failed, when
    /// they leave nothing behind (what a kill must not leave either).
    aborts: Vec<String>,
    skipped: Vec<String>,
    /// Runs of flags that ask too much, refused before starting.
    refused_before_start: u64,
}

/// `args` as a user would write them, with a space after, or nothing.
fn flags_text(args: &[&str]) -> String {
    args.iter().map(|a| format!("{a} ")).collect()
}

/// Runs every topic under every limit; prints the table and the totals.
pub(super) fn limits_stage(topics: &[Topic]) -> Result<LimitsTally> {
    let cgroup = PidsCgroup::make();
    let mut tally = LimitsTally::default();
    if cgroup.is_none() {
        tally.skipped.push(
            "pids.max: no pids cgroup could be made here, and RLIMIT_NPROC does not bind root"
                .to_owned(),
        );
    }
    let mut rows = vec![
        std::iter::once("topic".to_owned())
            .chain(LIMITS.iter().map(|l| l.name()))
            .chain(["flags beyond a limit".to_owned()])
            .collect::<Vec<_>>(),
    ];
    for topic in topics {
        let mut row = vec![topic.name.clone()];
        for limit in LIMITS {
            let resolved = limit.for_topic(&topic.name);
            let (outcome, _) = match (limit, &cgroup) {
                (Limit::Pids(_), None) => {
                    row.push("skip".to_owned());
                    continue;
                }
                _ => run_under(topic, resolved, &[], cgroup.as_ref(), &mut tally)?,
            };
            *tally.counts.entry(outcome.letter()).or_default() += 1;
            row.push(match resolved {
                Limit::AddressSpace(b) if matches!(limit, Limit::AddressSpaceOfTopic) => {
                    format!("{} ({} MiB)", outcome.letter(), b >> 20)
                }
                _ => outcome.letter().to_owned(),
            });
        }
        row.push(asked_too_much(topic, cgroup.as_ref(), &mut tally)?);
        rows.push(row);
    }
    say(&table(&rows));
    for s in &tally.skipped {
        say(&format!("  skipped: {s}"));
    }
    for a in &tally.aborts {
        say(&format!("  abort: {a}"));
    }
    for b in &tally.bad {
        say(&format!("  - {b}"));
    }
    let count = |k: &str| tally.counts.get(k).copied().unwrap_or(0);
    say(&format!(
        "limits: {} runs: {} passed, {} refused naming the limit ({} of them flags refused \
         before starting), {} aborts, {} crashes, {} panics, {} hangs, {} with leftovers, {} \
         errors that name no limit",
        tally.counts.values().sum::<u64>(),
        count("ok"),
        count("refused"),
        tally.refused_before_start,
        count("ABORT"),
        count("CRASH"),
        count("PANIC"),
        count("HANG"),
        tally.bad.iter().filter(|b| b.contains("left ")).count(),
        count("unnamed"),
    ));
    Ok(tally)
}

/// The run of `topic`'s flags that ask too much ([`ASKS`]) under their limit: "refused" if it
/// was refused before starting, with exit 2 naming the limit; "-" for a topic with no such
/// flag, or whose limit cannot be set here.
fn asked_too_much(
    topic: &Topic,
    cgroup: Option<&PidsCgroup>,
    tally: &mut LimitsTally,
) -> Result<String> {
    let Some(&(_, args, limit)) = ASKS.iter().find(|(name, ..)| *name == topic.name) else {
        return Ok("-".to_owned());
    };
    if matches!(limit, Limit::Pids(_)) && cgroup.is_none() {
        return Ok("-".to_owned());
    }
    let (mut outcome, code) = run_under(topic, limit, args, cgroup, tally)?;
    if outcome == Outcome::Refused && code != Some(2) {
        tally.bad.push(format!(
            "{} {} under {}: refused with exit {code:?}, not 2 before starting",
            topic.name,
            args.join(" "),
            limit.name(),
        ));
        outcome = Outcome::Unnamed;
    }
    if outcome == Outcome::Refused {
        tally.refused_before_start += 1;
    }
    *tally.counts.entry(outcome.letter()).or_default() += 1;
    Ok(outcome.letter().to_owned())
}

/// One `--quick --json` run of `topic` with `args` under `limit`: what became of it, and its
/// exit code.
fn run_under(
    topic: &Topic,
    limit: Limit,
    args: &[&str],
    cgroup: Option<&PidsCgroup>,
    tally: &mut LimitsTally,
) -> Result<(Outcome, Option<i32>)> {
    let before = Snapshot::take();
    // For MsgQueueUsed: a queue of ours, its name unlinked at once, charged to this user's
    // quota for as long as we hold it (the run's own queues then find the quota used up).
    let held = match limit {
        Limit::MsgQueueUsed(_) => Some(hold_queue()?),
        _ => None,
    };
    let shm_left = std::env::temp_dir().join(format!("xtask-limits-{}.left", std::process::id()));
    let mut command = match limit {
        Limit::TinyShm(bytes) => {
            // A private mount namespace with a tiny tmpfs over /dev/shm; what the run leaves
            // there is listed before the namespace (and the tmpfs) goes.
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(format!(
                    "mount -t tmpfs -o size={bytes},mode=1777 tmpfs /dev/shm || exit 99; \
                     \"$0\" --quick --json \"$@\"; rc=$?; ls -A /dev/shm > {}; exit $rc",
                    shm_left.display()
                ))
                .arg(&topic.binary)
                .args(args);
            c
        }
        _ => {
            let mut c = Command::new(&topic.binary);
            c.args(["--quick", "--json"]).args(args);
            c
        }
    };
    let procs =
        cgroup.map(|g| CString::new(g.0.join("cgroup.procs").as_os_str().as_encoded_bytes()));
    let procs = procs.transpose().context("a cgroup path with a NUL")?;
    if let Limit::Pids(n) = limit {
        let g = cgroup.context("no pids cgroup")?;
        std::fs::write(g.0.join("pids.max"), n.to_string()).context("write pids.max")?;
    }
    // SAFETY: the closure runs in the forked child before exec; it makes only plain system
    // calls (setrlimit, open, write, close) and allocates nothing (`procs` was built before).
    unsafe {
        command.pre_exec(move || {
            let set = |resource, value: u64| {
                let l = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &l) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            match limit {
                Limit::Nofile(n) => set(libc::RLIMIT_NOFILE, n)?,
                Limit::AddressSpace(b) => set(libc::RLIMIT_AS, b)?,
                Limit::MsgQueue(b) | Limit::MsgQueueUsed(b) => set(libc::RLIMIT_MSGQUEUE, b)?,
                Limit::Pids(_) => {
                    if let Some(path) = &procs {
                        let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
                        if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                            return Err(std::io::Error::last_os_error());
                        }
                        libc::close(fd);
                    }
                }
                Limit::TinyShm(_) | Limit::AddressSpaceOfTopic => {}
            }
            Ok(())
        });
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {} under {}", topic.name, limit.name()))?;
    let stderr = workspace::drain(child.stderr.take().expect("piped"));
    let stdout = workspace::drain(child.stdout.take().expect("piped"));
    let e = finish(Running {
        child,
        stderr,
        stdout,
    })?;
    if let Some(q) = held {
        nix::mqueue::mq_close(q).context("mq_close the quota queue")?;
    }
    let mut left = e.leftovers.clone();
    left.extend(Snapshot::take().new_since(&before));
    if let Limit::TinyShm(_) = limit {
        let inside = std::fs::read_to_string(&shm_left).unwrap_or_default();
        let _ = std::fs::remove_file(&shm_left);
        if e.code == Some(99) {
            tally.skipped.push(format!(
                "{}: mounting a tmpfs over /dev/shm failed",
                limit.name()
            ));
            return Ok((Outcome::Passed, e.code));
        }
        let prefix = format!("{}-", labkit::PREFIX);
        left.extend(
            (inside.lines())
                .filter(|n| n.trim_start_matches("sem.").starts_with(&prefix))
                .map(|n| format!("/dev/shm/{n} (inside the namespace)")),
        );
    }
    let (words, value) = limit.named_by();
    let named = words.iter().any(|w| e.stderr.contains(w)) && e.stderr.contains(&value);
    // Through the shell of the /dev/shm namespace, a death by signal n reads as exit 128 + n.
    let signal = e.signal.or(match (limit, e.code) {
        (Limit::TinyShm(_), Some(c)) if c > 128 => Some(c - 128),
        _ => None,
    });
    let outcome = if e.hung {
        Outcome::Hung
    } else if let Some(signal) = signal {
        if signal == libc::SIGABRT {
            Outcome::Aborted
        } else {
            Outcome::Crashed
        }
    } else if e.code == Some(101) || e.stderr.contains("panicked") {
        Outcome::Panicked
    } else if e.code == Some(0) {
        Outcome::Passed
    } else if matches!(e.code, Some(1 | 2)) && named {
        Outcome::Refused
    } else {
        Outcome::Unnamed
    };
    let what = format!("{} {}under {}", topic.name, flags_text(args), limit.name());
    if !matches!(outcome, Outcome::Passed | Outcome::Refused) {
        let how = signal.map_or_else(|| format!("exit {:?}", e.code), |s| format!("signal {s}"));
        let line = format!(
            "{what}: {} ({how}): {}",
            outcome.letter(),
            last_line(&e.stderr)
        );
        match outcome {
            Outcome::Aborted => tally.aborts.push(line),
            _ => tally.bad.push(line),
        }
    }
    if !left.is_empty() {
        tally.bad.push(format!("{what}: left {}", left.join(", ")));
    }
    Ok((outcome, e.code))
}

/// A message queue of 10 messages of 8 KiB, unlinked at once, held open: what it is charged
/// stays charged to this user's `RLIMIT_MSGQUEUE` quota until the caller closes it
/// (`mq_close`; nix's descriptor does not close itself).
fn hold_queue() -> Result<nix::mqueue::MqdT> {
    use nix::mqueue::{MQ_OFlag, MqAttr, mq_open, mq_unlink};
    use nix::sys::stat::Mode;
    let name = format!("/{}-xtask-quota-{}", labkit::PREFIX, std::process::id());
    let attr = MqAttr::new(0, 10, 8192, 0);
    let flags = MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR;
    let q = mq_open(
        name.as_str(),
        flags,
        Mode::S_IRUSR | Mode::S_IWUSR,
        Some(&attr),
    )
    .with_context(|| format!("mq_open {name} (to use up the queue quota)"))?;
    mq_unlink(name.as_str()).context("mq_unlink the quota queue")?;
    Ok(q)
}
