//! Noticing a dead peer while waiting untimed. A POSIX wait here is a plain `sem_wait`, as fast
//! as C's, so nothing inside it looks up: a watchdog thread polls the peers' pidfds (a normal
//! exit is not a death) and the signal self-pipe, and on a death or a signal sets a flag and
//! posts the semaphores, so the waiter wakes, reads the flag and reports why.

use std::cell::RefCell;
use std::io::PipeWriter;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use labkit::child::{Peer, explain_break};
use labkit::signals::Shutdown;

use crate::sem::{PosixSem, Semaphore};

/// The children of one exchange. In a `RefCell`: an error report needs them mutably while
/// the exchange borrows them.
pub type Peers = RefCell<Vec<Peer>>;

/// Starts the watchdog of `peers` in the scope `s`: when one of them dies or a shutdown signal
/// arrives, it sets `dead` and posts `sems`. It stops when the returned pipe end is dropped.
pub fn start<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    peers: &Peers,
    shutdown: &'env Shutdown,
    sems: Vec<&'env PosixSem>,
    dead: &'env AtomicBool,
) -> Result<PipeWriter> {
    let exits = exit_fds(peers)?;
    let (stop, stop_tx) = std::io::pipe().context("pipe")?;
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn_scoped(s, move || {
            if labkit::child::watch_peers(stop.as_fd(), shutdown, exits) {
                dead.store(true, Ordering::SeqCst);
                for sem in &sems {
                    for _ in 0..16 {
                        let _ = sem.post();
                    }
                }
            }
        })
        .context("spawn the watchdog thread")?;
    Ok(stop_tx)
}

/// Copies of the peers' exit descriptors (pidfds), for the watchdog thread.
fn exit_fds(peers: &Peers) -> Result<Vec<OwnedFd>> {
    peers
        .borrow()
        .iter()
        .map(|p| {
            let fd = p
                .exit_fd()
                .context("pidfd_open is needed to watch the peers")?;
            fd.try_clone_to_owned().context("dup a pidfd")
        })
        .collect()
}

/// The error for a broken wait (see `labkit::child::explain_break`).
pub fn broke(peers: &Peers, err: std::io::Error) -> anyhow::Error {
    explain_break(&mut peers.borrow_mut(), err)
}
