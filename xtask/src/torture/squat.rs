//! Squatted names: a name planted before a topic takes it must be refused, and left alone.

use super::*;

/// The ways a name can be squatted before a topic takes it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Squat {
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
pub(super) fn squat(
    topics: &[Topic],
    binaries: &[PathBuf],
    mq: &MqueueView,
    t: &mut Tally,
) -> Result<()> {
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

pub(super) const BAIT: &[u8] = b"not yours\n";

/// Paths planted by the harness, removed on every way out (no ledger lists them).
pub(super) struct Planted(pub(super) Vec<PathBuf>);

impl Drop for Planted {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir(p));
        }
    }
}

/// Inode, mode, owner, size and modification time (s, ns) of a path, not following links.
pub(super) type Fingerprint = (u64, u32, u32, u64, i64, i64);

/// What would change if a topic opened, truncated, wrote, re-owned or replaced an object.
pub(super) fn fingerprints(paths: &[PathBuf]) -> Vec<Option<Fingerprint>> {
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
pub(super) fn finish_with_env(topic: &Topic, token: &str) -> Result<Ended> {
    let env = [(labkit::names::TEST_NEXT_NAME_ENV, token)];
    finish(start_with(topic, &["--quick", "--json"], &env)?)
}

/// Plants every kind of object under the name `pvt-test-<token>`.
pub(super) fn plant(
    token: &str,
    how: Squat,
    bait: &std::path::Path,
    mq: &MqueueView,
) -> Result<Planted> {
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
pub(super) fn create_shm(name: &str) -> Result<()> {
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
