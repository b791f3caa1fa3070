//! A topic run from the outside: started, watched, reaped, and judged for what it left.

use super::*;

/// An mqueue file system on a private temporary directory, unmounted on drop; `None` where
/// mounting is not permitted.
pub(super) struct MqueueView(pub(super) Option<PathBuf>);

impl MqueueView {
    pub(super) fn mount() -> MqueueView {
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

    pub(super) fn describe(&self) -> String {
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
    pub(super) fn names(&self) -> BTreeSet<String> {
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
pub(super) fn everything(mq: &MqueueView) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let snap = Snapshot::take();
    all.extend(snap.new_since(&Snapshot::empty()));
    all.extend(mq.names());
    all
}

/// A topic running at default size, its stderr drained in a thread.
pub(super) struct Running {
    pub(super) child: Child,
    pub(super) stderr: std::thread::JoinHandle<String>,
    pub(super) stdout: std::thread::JoinHandle<String>,
}

pub(super) fn start(topic: &Topic, args: &[&str]) -> Result<Running> {
    start_with(topic, args, &[])
}

/// Starts a topic with `env` added to its environment, its output drained in threads.
pub(super) fn start_with(topic: &Topic, args: &[&str], env: &[(&str, &str)]) -> Result<Running> {
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
pub(super) struct Ended {
    pub(super) code: Option<i32>,
    pub(super) signal: Option<i32>,
    pub(super) stderr: String,
    pub(super) stdout: String,
    pub(super) hung: bool,
    pub(super) leftovers: Vec<String>,
}

pub(super) fn finish(mut r: Running) -> Result<Ended> {
    let (status, hung) = wait_status(&mut r)?;
    // Leftovers first: one may hold the output pipes open, and the readers would wait for it.
    let leftovers = leftovers::reap_leftovers(Duration::from_secs(2));
    Ok(collect(r, status, hung, leftovers))
}

/// Waits (under the hang guard) for a run's status, without reaping anything else.
pub(super) fn wait_status(r: &mut Running) -> Result<(std::process::ExitStatus, bool)> {
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
pub(super) fn collect(
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
pub(super) fn sleep_until(r: &mut Running, started: Instant, at: Duration) -> Result<bool> {
    while started.elapsed() < at {
        if r.child.try_wait()?.is_some() {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(r.child.try_wait()?.is_none())
}

/// What the lab's runs left since `before`.
pub(super) fn new_since(mq: &MqueueView, before: &BTreeSet<String>) -> Vec<String> {
    everything(mq).difference(before).cloned().collect()
}

/// Fails `what` if anything was left since `before`.
pub(super) fn fail_if_left(
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
pub(super) fn judge_normal(topic: &Topic, e: &Ended, what: &str, t: &mut Tally) {
    judge_common(topic, e, what, t);
    if e.code != Some(0) || !report_passed(&e.stdout) {
        t.fail(
            topic,
            format!(
                "{what}: exit {:?} or a failed check: {} {}",
                e.code,
                last_line(&e.stderr),
                // Which check, and why: a crowd's failure is rare and must say itself.
                failed_checks(&e.stdout).trim_end().replace('\n', "; ")
            ),
        );
    }
}

/// What every round checks: no hang, no panic, no process left behind.
pub(super) fn judge_common(topic: &Topic, e: &Ended, what: &str, t: &mut Tally) {
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
pub(super) fn failed_checks(stdout: &str) -> String {
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

pub(super) fn report_passed(stdout: &str) -> bool {
    serde_json::from_str::<Report>(stdout).is_ok_and(|r| {
        testkit::problems(&r).is_empty() && r.checks.iter().all(|c| c.status != Status::Fail)
    })
}

pub(super) fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no message)")
        .trim()
        .to_owned()
}
