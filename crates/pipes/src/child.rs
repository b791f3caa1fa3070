//! The other process of every exchange: this binary, started again in a hidden `--role`.
//! [`command`] is how the parent names it; [`run`] is what the child does in each role.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::process::Command;

use crate::nonce as probe;
use anyhow::{Context, Result};
use labkit::Outcome;
use labkit::child::fd_args;
use labkit::exit::usage;

use crate::pingpong::{self, HEADER};
use crate::{Args, BYTES, FIFO_MESSAGES, semantics, stream};

/// The command that starts this binary again in the role `role`, handing it `fds`: each is
/// named by `--fd N`, in order, and the child finds it at that same number. Give the same
/// `fds` to `labkit::child::Peer::start`, which keeps exactly those open across `exec`.
pub fn command(role: &str, fds: &[BorrowedFd<'_>]) -> Result<Command> {
    let mut command = labkit::child::this_binary(role)?; // <this binary> --role <role>
    command.args(fd_args(fds));
    Ok(command)
}

/// The child's side of each exchange, when this binary runs with `--role`.
pub fn run(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    // The descriptors the parent named with `--fd`, in the order it named them.
    let mut fds = args.role.take_fds()?.into_iter();
    let mut next_fd = |what: &str| -> Result<OwnedFd> {
        fds.next().with_context(|| format!("no {what} fd passed"))
    };
    let bytes = args.common.size(args.bytes, BYTES) as usize;
    match args.role.role.as_deref().unwrap_or_default() {
        "echo" => {
            let rx = PipeReader::from(next_fd("read")?);
            let tx = PipeWriter::from(next_fd("write")?);
            pingpong::stream_echo(rx, tx, bytes).context("echo")?;
        }
        "sink" => {
            let rx = PipeReader::from(next_fd("read")?);
            let tx = PipeWriter::from(next_fd("write")?);
            stream::serve_streams(rx, tx).context("read streams")?;
        }
        "write-hello" => {
            let mut tx = PipeWriter::from(next_fd("write")?);
            tx.write_all(b"hello").context("write to the pipe")?;
        }
        "read-one" => {
            let mut rx = PipeReader::from(next_fd("read")?);
            let mut msg = vec![0u8; bytes];
            rx.read_exact(&mut msg).context("read from the pipe")?;
            pingpong::verify(&msg, 0).context("the message read")?;
        }
        "probe" => {
            let mut rx = PipeReader::from(next_fd("read")?);
            let mut tx = PipeWriter::from(next_fd("write")?);
            let seen = probe::look_and_receive(args.role.probe_addr()?, |b| rx.read_exact(b))
                .context("read /proc/self/mem, then the pipe")?;
            tx.write_all(&seen.encode()).context("write to the pipe")?;
        }
        "fifo-writer" => {
            // Held until we exit: its closing tells the parent we are gone.
            let _alive = next_fd("liveness")?;
            let path = args
                .fifo
                .context("--fifo is required for the fifo-writer role")?;
            let count = args.messages.unwrap_or(FIFO_MESSAGES);
            semantics::write_messages(&path, count, HEADER * 2)
                .with_context(|| format!("write to {}", path.display()))?;
        }
        other => return Err(usage(format!("unknown role `{other}`"))),
    }
    Ok(Outcome::Passed)
}
