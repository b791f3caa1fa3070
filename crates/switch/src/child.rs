//! The far side of a hand-off as a process: where it is started (this binary again, in the
//! role `pipe-pong` or `futex-pong`), what it inherits, and what it does.

use std::io::{PipeReader, PipeWriter, Write};
use std::os::fd::BorrowedFd;

use anyhow::{Context, Result};
use labkit::Outcome;
use labkit::child::{Peer, cpu_arg, fd_args, this_binary};
use labkit::exit::usage;

use crate::Args;
use crate::contender::Tally;
use crate::handoff::{self, SharedWord};

/// Starts this binary again as the far side of a hand-off, in `role`, pinned to `cpu` if given.
pub fn start(role: &str, inherit: &[BorrowedFd<'_>], cpu: Option<usize>) -> Result<Peer> {
    // The child inherits `inherit` (its pipe ends, or the memfd of the futex word; then the
    // write end of its report pipe) at the same descriptor numbers, named by `--fd` in this
    // order; it takes them back with `args.role.take_fds()` (see `run` below), and pins itself
    // to `--cpu` before its first hand-off.
    let mut command = this_binary(role)?; // <this binary> --role <role>
    command.args(fd_args(inherit)).args(cpu_arg(cpu));
    // `Peer::start` sets the guards before exec: the child dies with us (PR_SET_PDEATHSIG),
    // ignores Ctrl-C (we decide when it ends), keeps exactly `inherit` open across exec (the
    // rest is close-on-exec), and dropping the `Peer` on any way out kills and reaps it.
    Peer::start(command, inherit)
}

/// The far side of each hand-off, when this binary runs as a child (`--role`): answers until
/// told to stop, then writes its [`Tally`] on the report pipe.
pub fn run(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let mut next_fd = |what: &str| fds.next().with_context(|| format!("no {what} fd passed"));
    let before = handoff::switches().context("getrusage(RUSAGE_THREAD)")?;
    let (served, mut report) = match args.role.role.as_deref().unwrap_or_default() {
        "pipe-pong" => {
            let rx = PipeReader::from(next_fd("read")?);
            let tx = PipeWriter::from(next_fd("write")?);
            let report = PipeWriter::from(next_fd("report")?);
            // EOF on `rx` (the parent closed its end) is the stop.
            let served = handoff::pipe_pong(rx, tx).context("pipe hand-offs")?;
            (served, report)
        }
        "futex-pong" => {
            let memfd = next_fd("memfd")?;
            let report = PipeWriter::from(next_fd("report")?);
            let word = SharedWord::map(&memfd).context("mmap the shared page")?;
            // The parent's death kills us (PR_SET_PDEATHSIG); no need to watch for it here.
            let served = handoff::futex_pong(word.word(), &|| true).context("futex hand-offs")?;
            (served, report)
        }
        other => return Err(usage(format!("unknown role `{other}`"))),
    };
    let tally = Tally::since(served, before).context("getrusage(RUSAGE_THREAD)")?;
    report
        .write_all(&tally.to_bytes())
        .context("write the tally")?;
    Ok(Outcome::Passed)
}
