//! The kill and signal rounds, and the crowd: a topic SIGKILLed, signalled, run many at once.

use super::*;

pub(super) fn kill_round(
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
            crate::clean::clean_dead().context("clean")?;
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
pub(super) fn pidfd_kill(fd: &std::os::fd::OwnedFd) -> std::io::Result<()> {
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
pub(super) fn finished_first(
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

pub(super) fn signal_round(
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

pub(super) fn crowd(topic: &Topic, copies: usize, mq: &MqueueView, t: &mut Tally) -> Result<()> {
    let before = everything(mq);
    let runs: Vec<Running> = (0..copies)
        .map(|_| start(topic, &["--quick", "--json"]))
        .collect::<Result<_>>()?;
    let mut runs = runs;
    let statuses: Vec<_> = runs.iter_mut().map(wait_status).collect::<Result<_>>()?;
    let leftovers = leftovers::reap_leftovers(Duration::from_secs(2));
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
