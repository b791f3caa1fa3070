//! Steps 3 and 4: what a lock holder's death leaves behind. A process killed holding the robust
//! mutex: the next locker gets `EOWNERDEAD`, finishes the update, calls
//! `pthread_mutex_consistent`, and goes on (unlocking without it leaves the mutex
//! `ENOTRECOVERABLE` for good). A thread that panics holding a `std::sync::Mutex`: the lock is
//! poisoned, and the half-updated data still reachable.

use std::io::{PipeWriter, Read, Write};
use std::os::fd::AsFd;
use std::sync::Mutex;

use crate::shared::SharedMemory;
use anyhow::{Context, Result, bail};
use labkit::Report;
use labkit::child::{HANG_GUARD, Peer};
use nix::sys::signal::{Signal, kill};

use crate::robust::{Guarded, Locked};
use crate::{Seen, Shared};

/// What step 3 observed.
pub struct Death {
    pub owner_died_seen: bool,
    pub repaired: bool,
    pub recovered: bool,
    pub unrecoverable_seen: bool,
    /// What was seen, in words.
    pub seen: String,
}

/// Step 3: a holder dies; its lock is recovered, or, without `consistent`, lost for good.
pub fn show_owner_death(
    report: &mut Report,
    memory: &SharedMemory,
    shared: &Shared,
) -> Result<Death> {
    // The child holds `doomed`, mid-update, when we kill it.
    let mut peer = child_holding(memory, "doomed")?;
    kill(peer.pid(), Signal::SIGKILL).context("kill the holder")?;
    let status = peer.wait()?;
    let first = shared.doomed.lock(HANG_GUARD)?;
    let owner_died_seen = first == Locked::OwnerDied;
    let repaired = owner_died_seen && shared.doomed.repair();
    if owner_died_seen {
        shared.doomed.make_consistent()?;
    }
    shared.doomed.unlock()?;
    let recovered =
        shared.doomed.lock(HANG_GUARD)? == Locked::Clean && shared.doomed.unlock().is_ok();
    let value = shared.doomed.counter(HANG_GUARD)?;
    let repaired_seen = format!(
        "the holder {} mid-update; our lock returned {}; we finished its update (counter now \
         {value}), called pthread_mutex_consistent, and the next lock was {}",
        labkit::child::describe(status),
        if owner_died_seen {
            "EOWNERDEAD"
        } else {
            "no EOWNERDEAD"
        },
        if recovered { "clean" } else { "NOT clean" }
    );
    report.check(
        "a robust mutex whose owner died is handed on with EOWNERDEAD, and repaired",
        owner_died_seen && repaired && recovered && value == 1,
        &repaired_seen,
    );

    // The same death, but we unlock without making it consistent.
    let mut peer = child_holding(memory, "unrecoverable")?;
    kill(peer.pid(), Signal::SIGKILL).context("kill the holder")?;
    peer.wait()?;
    let first = shared.unrecoverable.lock(HANG_GUARD)?;
    shared.unrecoverable.unlock()?;
    let second = shared.unrecoverable.lock(HANG_GUARD);
    let unrecoverable_seen = first == Locked::OwnerDied
        && matches!(&second, Err(e) if e.to_string().contains(&std::io::Error::from_raw_os_error(libc::ENOTRECOVERABLE).to_string()));
    let unrecoverable_text = format!(
        "unlocked at once after EOWNERDEAD, the next lock returned {}",
        match &second {
            Ok(l) => format!("{l:?}"),
            Err(e) => e.to_string(),
        }
    );
    report.check(
        "unlocking without pthread_mutex_consistent leaves the mutex ENOTRECOVERABLE",
        unrecoverable_seen,
        &unrecoverable_text,
    );
    Ok(Death {
        owner_died_seen,
        repaired,
        recovered,
        unrecoverable_seen,
        seen: format!("{repaired_seen}; {unrecoverable_text}"),
    })
}

/// A child takes `which` of the shared mutexes, starts an update, says so, and waits to die.
fn child_holding(memory: &SharedMemory, which: &str) -> Result<Peer> {
    let (mut ready_rx, ready_tx) = std::io::pipe().context("pipe")?;
    // This binary again, in the role `hold`, with the shared memory and `ready`'s write end.
    let mut peer = crate::child::start("hold", memory, &[ready_tx.as_fd()], ["--which", which])?;
    drop(ready_tx); // The child has its copy; ours would hide its death (no EOF).
    let mut b = [0u8; 1];
    if ready_rx.read_exact(&mut b).is_err() {
        return Err(peer.death("before it took the lock"));
    }
    Ok(peer)
}

/// In a child (role `hold`): takes `which`, starts an update, says so on `ready`, and waits to
/// be killed.
pub fn hold(which: &Guarded, mut ready: PipeWriter) -> Result<()> {
    which.start_update_and_hold(HANG_GUARD)?;
    ready.write_all(b"!").context("say the lock is held")?;
    // Hold it until SIGKILL, or until the parent dies (PR_SET_PDEATHSIG).
    std::thread::sleep(HANG_GUARD);
    bail!("the holder was never killed");
}

/// Step 4: the thread analogue: a panic poisons the `Mutex`. An error if the panicking thread
/// could not be created.
pub fn show_poisoning(report: &mut Report) -> Result<Seen> {
    let data = Mutex::new(vec![1, 2, 3]);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // This panic is on purpose: keep stderr clean.
    let panicked = std::thread::scope(|s| {
        let panicking = std::thread::Builder::new()
            .name("mutex-panicker".into())
            .spawn_scoped(s, || {
                let mut guard = data.lock().unwrap_or_else(|p| p.into_inner());
                guard.push(4); // Half an update…
                panic!("on purpose, holding the lock");
            })?;
        Ok::<_, std::io::Error>(panicking.join().is_err())
    });
    std::panic::set_hook(previous); // Put back before any error, which is then reported as usual.
    let panicked = panicked.context("spawn the panicking thread")?;
    let (poisoned, recovered) = match data.lock() {
        Ok(_) => (false, Vec::new()),
        Err(poison) => (true, poison.into_inner().clone()),
    };
    let seen = Seen {
        ok: panicked && poisoned && recovered == [1, 2, 3, 4],
        text: format!(
            "a thread {} holding a Mutex; the next lock returned {}{}",
            if panicked {
                "panicked"
            } else {
                "did NOT panic"
            },
            if poisoned { "Err(PoisonError)" } else { "Ok" },
            if poisoned {
                format!(
                    "; PoisonError::into_inner still gave the data, {recovered:?}, half-updated, \
                     for us to check"
                )
            } else {
                String::new()
            }
        ),
    };
    report.check(
        "a thread that panics holding a Mutex poisons it",
        seen.ok,
        &seen.text,
    );
    Ok(seen)
}
