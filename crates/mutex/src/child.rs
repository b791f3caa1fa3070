//! The children of this topic: where each is started (this binary again, in a role), what it
//! inherits, and what it does: count under the lock (step 2) or hold it until killed (step 3).

use std::io::{PipeReader, PipeWriter};
use std::os::fd::BorrowedFd;

use crate::shared::SharedMemory;
use anyhow::{Context, Result};
use labkit::Outcome;
use labkit::child::{Peer, fd_args, this_binary};
use labkit::exit::usage;

use crate::{Args, INCREMENTS, Shared};

/// Starts this binary again as a child in `role`, sharing `memory` and `pipes`, told `flag`
/// (`--increments N` for a counting party, `--which M` for a holder).
pub fn start(
    role: &str,
    memory: &SharedMemory,
    pipes: &[BorrowedFd<'_>],
    flag: [&str; 2],
) -> Result<Peer> {
    // The child inherits the shared memory (a memfd: no name anywhere, so nothing to clean up)
    // and our ends of `pipes`, at the same descriptor numbers, named by `--fd` in this order;
    // it takes them back with `args.role.take_fds()` (see `run` below).
    let mut inherit = vec![memory.fd()];
    inherit.extend_from_slice(pipes);
    let mut command = this_binary(role)?; // <this binary> --role <role>
    command.args(fd_args(&inherit)).args(flag);
    // `Peer::start` sets the guards before exec: the child dies with us (PR_SET_PDEATHSIG),
    // ignores Ctrl-C (we decide when it ends), keeps exactly `inherit` open across exec (the
    // rest is close-on-exec), and dropping the `Peer` on any way out kills and reaps it.
    Peer::start(command, &inherit)
}

/// The children's side (`--role`): a counting party, or a holder that waits to be killed.
pub fn run(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let memory = SharedMemory::open(fds.next().context("no shared memory fd passed")?)?;
    // SAFETY: the parent initialised a `Shared` at the start of this mapping before starting us,
    // and keeps it mapped and unmoved; the mutexes make every access to the data safe.
    let shared: &Shared = unsafe { &*memory.cast::<Shared>() };
    match args.role.role.as_deref().unwrap_or_default() {
        "increment" => {
            let go = PipeReader::from(fds.next().context("no go fd passed")?);
            let done = PipeWriter::from(fds.next().context("no done fd passed")?);
            let increments = args.increments.unwrap_or(INCREMENTS.full);
            crate::measure::party(&shared.counter, go, done, increments)?;
        }
        "hold" => {
            let ready = PipeWriter::from(fds.next().context("no ready fd passed")?);
            let which = match args.which.as_deref() {
                Some("doomed") => &shared.doomed,
                Some("unrecoverable") => &shared.unrecoverable,
                other => return Err(usage(format!("no mutex {other:?}"))),
            };
            crate::death::hold(which, ready)?;
        }
        other => return Err(usage(format!("unknown role `{other}`"))),
    }
    Ok(Outcome::Passed)
}
