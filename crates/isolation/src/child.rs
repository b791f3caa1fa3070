//! The sacrificial process of step 4: this binary again, in the role `thread-fault`, where a
//! worker thread reports its progress while its sibling thread faults.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::Outcome;
use labkit::child::{HANG_GUARD, Peer, fd_arg, this_binary};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::fault;

/// Units of work the doomed process's worker thread plans, and after how many its sibling faults.
pub const PLANNED_UNITS: u64 = 1_000_000;
const FAULT_AFTER: u64 = 20;

/// Starts the sacrificial process and waits for it to die: how many units its worker thread
/// finished, and how the process ended.
pub fn watch_thread_fault() -> Result<(u64, ExitStatus)> {
    let (mut progress, progress_tx) = std::io::pipe().context("pipe")?;
    // The sacrificial process is this binary again, in the role `thread-fault`. It inherits
    // the write end of the progress pipe at the same descriptor number, named by `--fd` (it
    // takes it back with `args.role.take_fds()`); Rust opens every other descriptor of ours
    // close-on-exec, so it gets none of them (stdin and stdout are /dev/null, stderr is ours).
    // `Peer::start` has it die with us and ignore Ctrl-C, and kills and reaps it if we return
    // early.
    let mut command = this_binary("thread-fault")?; // <this binary> --role thread-fault
    command.args(fd_arg(&progress_tx));
    let mut peer = Peer::start(command, &[progress_tx.as_fd()])?;
    drop(progress_tx); // Only the child may write, so its death is our EOF.
    let bytes = read_until_eof(&mut progress, HANG_GUARD)
        .context("read the worker's progress")?
        .context("hang guard: the faulting process did not end")?;
    let done = bytes
        .chunks_exact(8)
        .last()
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let status = peer
        .wait_for(HANG_GUARD)?
        .context("hang guard: the faulting process did not end")?;
    Ok((done, status))
}

/// Reads `pipe` to EOF, but gives up after `limit` (`None`): a process that should have died
/// and did not must not hang the demo.
fn read_until_eof(pipe: &mut PipeReader, limit: Duration) -> std::io::Result<Option<Vec<u8>>> {
    let deadline = Instant::now() + limit;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms))? == 0 {
            continue;
        }
        match pipe.read(&mut chunk)? {
            0 => return Ok(Some(bytes)),
            n => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The sacrificial process itself (`--role thread-fault`): a worker thread writes each unit it
/// finishes to `progress`, while its sibling faults after [`FAULT_AFTER`] units. The fault
/// ends the whole process; returning at all is a failure.
pub fn sacrifice(progress: PipeWriter) -> Result<Outcome> {
    fault::no_core_dumps().context("no core dumps")?;
    let (done, abandon) = (AtomicU64::new(0), AtomicBool::new(false));
    std::thread::scope(|s| -> Result<()> {
        crate::named("iso-worker")
            .spawn_scoped(s, || {
                for unit in 1..=PLANNED_UNITS {
                    std::thread::sleep(Duration::from_micros(100));
                    done.store(unit, Ordering::SeqCst);
                    let sent = (&progress).write_all(&unit.to_le_bytes());
                    if sent.is_err() || abandon.load(Ordering::SeqCst) {
                        return;
                    }
                }
            })
            .context("spawn the worker thread")?;
        let faulter = crate::named("iso-faulter").spawn_scoped(s, || {
            while done.load(Ordering::SeqCst) < FAULT_AFTER {
                std::thread::sleep(Duration::from_micros(100));
            }
            fault::segfault_now()
        });
        if faulter.is_err() {
            abandon.store(true, Ordering::SeqCst); // No fault to wait for: the worker stops.
        }
        faulter.context("spawn the faulting thread")?;
        Ok(())
    })?;
    bail!("the faulting thread did not end the process")
}
