//! The pong process: how the parent starts it (this binary again, in the role `pong`), what it
//! does there (answers every turn through the shared condvar), and the tally it sends back.

use std::io::{PipeReader, PipeWriter, Write};
use std::os::fd::AsFd;

use crate::shared::SharedMemory;
use anyhow::{Context, Result};
use labkit::Outcome;
use labkit::child::{Peer, fd_args, this_binary};
use labkit::exit::usage;

use crate::Args;
use crate::pshared::{STOP, Turn, Waits};

/// What the pong child saw, sent back once it is told to stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Turns it answered.
    pub served: u64,
    pub waits: Waits,
}

impl Tally {
    /// Bytes on the tally pipe: three little-endian `u64`s.
    pub const LEN: usize = 24;

    fn encode(&self) -> [u8; Tally::LEN] {
        let mut bytes = [0u8; Tally::LEN];
        let words = [self.served, self.waits.spurious, self.waits.timeouts];
        for (k, v) in words.iter().enumerate() {
            bytes[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        bytes
    }

    pub fn decode(bytes: &[u8; Tally::LEN]) -> Tally {
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8"));
        Tally {
            served: word(0),
            waits: Waits {
                spurious: word(1),
                timeouts: word(2),
            },
        }
    }
}

/// Starts the pong child on the `Turn` in `memory`; returns it, and the read end of the pipe
/// its [`Tally`] comes back on (EOF there, before a tally, means it died).
pub fn start(memory: &SharedMemory) -> Result<(Peer, PipeReader)> {
    let (tally_rx, tally_tx) = std::io::pipe().context("pipe")?;
    // The pong side is this binary again, in the role `pong`. It inherits two descriptors at the
    // same numbers, named by `--fd` (it takes them back with `args.role.take_fds()`): the memfd
    // behind the shared page, which it maps to find the very same `Turn`, and the write end of
    // the tally pipe. Nothing else of ours reaches it: `exec` gives it a fresh image of the
    // program. `Peer::start` sets the guards: the child dies with us, ignores Ctrl-C (we decide
    // when it ends), keeps exactly these two descriptors open across `exec`, and is killed and
    // reaped if we drop it early.
    let inherit = [memory.fd(), tally_tx.as_fd()];
    let mut command = this_binary("pong")?; // <this binary> --role pong
    command.args(fd_args(&inherit));
    let peer = Peer::start(command, &inherit)?;
    drop(tally_tx); // Only the child may write its tally: its death is our EOF.
    Ok((peer, tally_rx))
}

/// The pong child's side: answers `2i + 2` to every `2i + 1` until told to stop, then writes
/// its tally.
pub fn run(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    if args.role.role.as_deref() != Some("pong") {
        let name = args.role.role.unwrap_or_default();
        return Err(usage(format!("unknown role `{name}`")));
    }
    // The descriptors the parent named with `--fd`, in its order.
    let mut fds = args.role.take_fds()?.into_iter();
    let memory = SharedMemory::open(fds.next().context("no shared memory fd passed")?)?;
    let mut tally_tx = PipeWriter::from(fds.next().context("no tally fd passed")?);
    // SAFETY: the parent initialised the `Turn` in this mapping before starting us and keeps it
    // mapped and unmoved.
    let turn: &Turn = unsafe { &*memory.cast::<Turn>() };
    let (mut served, mut waits) = (0u64, Waits::default());
    // Our parent's death kills us (PR_SET_PDEATHSIG): no liveness check needed on this side.
    let alive = || true;
    while turn
        .wait_for(2 * served + 1, &mut waits, &alive)
        .context("wait for a turn")?
        != STOP
    {
        turn.set(2 * served + 2).context("answer")?;
        served += 1;
    }
    let tally = Tally { served, waits };
    tally_tx
        .write_all(&tally.encode())
        .context("write the tally")?;
    Ok(Outcome::Passed)
}
