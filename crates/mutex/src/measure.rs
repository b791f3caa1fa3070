//! The timed loops: lock + unlock alone (step 1); then `n` re-executed processes, or `n`
//! threads, adding to one counter under a lock, all released at once and timed together, the
//! count checked (step 2).
//!
//! Both sides of the processes' protocol are here: each child ([`party`]) says it is ready on
//! the `done` pipe, blocks on `go` until we close our end (so all start together), counts, and
//! reports how many dead owners it found. We ([`processes`]) wait for those messages while
//! watching every child's exit, so a death wakes us at once.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use crate::shared::SharedMemory;
use anyhow::{Context, Result, bail};
use labkit::child::{HANG_GUARD, Peer};
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder};

use crate::robust::Guarded;
use crate::{BATCH, BATCHES};

/// The "ready" message a child sends before it waits for the start.
const READY: u64 = u64::MAX;

/// Step 1: `blocks` × `BATCHES` timed batches of `BATCH` lock + unlock pairs, alternating a
/// `std::sync::Mutex` (if `sides[1]`, threads) and the robust mutex (if `sides[0]`, processes).
/// Returns the ns per pair of each batch: (std, robust).
pub fn lock_unlock(
    robust: &Guarded,
    sides: [bool; 2],
    blocks: u64,
    shutdown: &Shutdown,
) -> Result<(LatencyRecorder, LatencyRecorder)> {
    let std_mutex = Mutex::new(0u64);
    let (mut std_ns, mut robust_ns) = (LatencyRecorder::new(), LatencyRecorder::new());
    for _ in 0..blocks {
        shutdown.check()?;
        for _ in 0..BATCHES {
            if sides[1] {
                let start = Instant::now();
                for _ in 0..BATCH {
                    *std_mutex.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                }
                std_ns.record_ns(start.elapsed().as_nanos() as u64 / BATCH);
            }
            if sides[0] {
                let start = Instant::now();
                for _ in 0..BATCH {
                    robust.lock(HANG_GUARD)?;
                    robust.unlock()?;
                }
                robust_ns.record_ns(start.elapsed().as_nanos() as u64 / BATCH);
            }
        }
    }
    Ok((std_ns, robust_ns))
}

/// One contended run's result.
pub struct Contended {
    pub elapsed: Duration,
    pub cpu: Duration,
    pub exact: bool,
}

/// `parties` re-executed processes add `increments` each to the shared counter.
pub fn processes(
    memory: &SharedMemory,
    counter: &Guarded,
    parties: u64,
    increments: u64,
    shutdown: &Shutdown,
) -> Result<Contended> {
    let before = counter.counter(HANG_GUARD)?;
    let (go_rx, go_tx) = std::io::pipe().context("pipe")?;
    let (mut done_rx, done_tx) = std::io::pipe().context("pipe")?;
    // Each party is this binary again, in the role `increment`: it inherits the shared memory
    // and both pipes' other ends (`child::start` says how, and what guards it).
    let mut peers = Vec::new();
    for _ in 0..parties {
        let pipes = [go_rx.as_fd(), done_tx.as_fd()];
        let count = ["--increments", &increments.to_string()];
        peers.push(crate::child::start("increment", memory, &pipes, count)?);
    }
    // The children have their copies; ours would keep `done` open past their deaths.
    drop((go_rx, done_tx));
    read_messages(&mut done_rx, parties, &mut peers, "get ready", shutdown)?;
    let pids: Vec<_> = peers.iter().map(Peer::pid).collect();
    let cpu_before = CpuClock::now(&pids)?;
    let start = Instant::now();
    drop(go_tx); // EOF on `go`: every child starts at once.
    let recovered = read_messages(&mut done_rx, parties, &mut peers, "finish", shutdown)?;
    let elapsed = start.elapsed();
    for peer in peers {
        peer.finish()?;
    }
    // Reaped now, the children's CPU time is in RUSAGE_CHILDREN: read it with no live pids
    // (a child that has exited has no CPU clock left to read).
    let cpu = CpuClock::since(cpu_before, &[])?;
    if recovered.iter().any(|&r| r > 0) {
        bail!("a child found a dead owner during a healthy run");
    }
    let after = counter.counter(HANG_GUARD)?;
    Ok(Contended {
        elapsed,
        cpu,
        exact: after - before == parties * increments,
    })
}

/// In a child (role `increment`): says it is ready, waits for the start, adds `increments` to
/// the counter, and reports how many locks found a dead owner.
pub fn party(
    counter: &Guarded,
    mut go: PipeReader,
    mut done: PipeWriter,
    increments: u64,
) -> Result<()> {
    done.write_all(&READY.to_le_bytes()).context("say ready")?;
    // Blocks until the parent closes its end: everyone starts together.
    let _ = go.read(&mut [0u8; 1]);
    let recovered = counter.increment(increments, HANG_GUARD)?;
    done.write_all(&recovered.to_le_bytes()).context("say done")
}

/// Reads one 8-byte message per peer. A peer that dies first, or a shutdown signal, wakes the
/// wait at once (each peer's exit descriptor and the signal self-pipe are polled beside `rx`).
fn read_messages(
    rx: &mut PipeReader,
    n: u64,
    peers: &mut [Peer],
    what: &str,
    shutdown: &Shutdown,
) -> Result<Vec<u64>> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut out = Vec::new();
    while (out.len() as u64) < n {
        let (readable, exited) = {
            let mut fds = vec![
                PollFd::new(rx.as_fd(), PollFlags::POLLIN),
                PollFd::new(shutdown.wake_fd(), PollFlags::POLLIN),
            ];
            fds.extend(
                peers
                    .iter()
                    // A child already reaped has said all it will: its pidfd would stay readable.
                    .filter(|p| !p.ended())
                    .filter_map(Peer::exit_fd)
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::from(u16::MAX)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds[2..].iter().any(ready))
        };
        shutdown.check()?;
        if readable {
            let mut b = [0u8; 8];
            if rx.read_exact(&mut b).is_ok() {
                out.push(u64::from_le_bytes(b));
                continue;
            }
        }
        if readable || exited {
            // A child exited, or every one closed the pipe (EOF): then each is exiting, though
            // its pipe closes a moment before it can be reaped, so wait for that moment.
            let limit = if readable { HANG_GUARD } else { Duration::ZERO };
            for peer in peers.iter_mut() {
                if let Some(status) = peer.wait_for(limit)? {
                    if !status.success() {
                        return Err(peer.death(format!("before it could {what}")));
                    }
                }
            }
            if readable {
                bail!("every child closed the pipe before it could {what}");
            }
        }
    }
    Ok(out)
}

/// `parties` threads add `increments` each to a `std::sync::Mutex<u64>`.
pub fn threads(parties: u64, increments: u64, shutdown: &'static Shutdown) -> Result<Contended> {
    let counter = Arc::new(Mutex::new(0u64));
    let start_line = Arc::new(Barrier::new(parties as usize + 1));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let handles: Vec<_> = (0..parties)
        .map(|_| {
            let (counter, start_line, done) = (
                Arc::clone(&counter),
                Arc::clone(&start_line),
                done_tx.clone(),
            );
            std::thread::Builder::new()
                .name("mutex-counter".into())
                .spawn(move || {
                    start_line.wait();
                    for i in 0..increments {
                        // A Ctrl-C stops the count within 4096 increments.
                        if i % 4096 == 0 && shutdown.requested().is_some() {
                            break;
                        }
                        *counter.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                    }
                    let _ = done.send(());
                })
                .context("spawn a counting thread")
        })
        // On an error, the threads already made wait at the start line until the process exits.
        .collect::<Result<_>>()?;
    let cpu_before = CpuClock::now(&[])?;
    start_line.wait();
    let start = Instant::now();
    for _ in 0..parties {
        done_rx.recv().context("a counting thread died")?;
    }
    let elapsed = start.elapsed();
    let cpu = CpuClock::since(cpu_before, &[])?;
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a counting thread panicked"))?;
    }
    shutdown.check()?;
    let total = *counter.lock().unwrap_or_else(|p| p.into_inner());
    Ok(Contended {
        elapsed,
        cpu,
        exact: total == parties * increments,
    })
}
