//! The processes' side: where each child starts, what it inherits (the shared page; a
//! producer also a `ready` and a `go` pipe end), and what it does in its role: the pong of
//! step 1, or a producer of step 2.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::BorrowedFd;
use std::process::Command;

use anyhow::{Context, Result, bail};
use labkit::child::{Peer, cpu_arg, fd_args, this_binary};

use crate::page::Page;
use crate::ring::Buffer;
use crate::sem::PosixSem;
use crate::wake;

/// This binary again, in `role`, told the numbers of the descriptors in `inherit` (`--fd`, in
/// order) and the CPU to pin itself to, if any.
fn command(role: &str, inherit: &[BorrowedFd<'_>], cpu: Option<usize>) -> Result<Command> {
    let mut command = this_binary(role)?; // <this binary> --role <role>
    command.args(fd_args(inherit)).args(cpu_arg(cpu));
    Ok(command)
}

/// Starts the pong of step 1, pinned to `cpu`.
pub fn start_pong(page: &Page, cpu: Option<usize>) -> Result<Peer> {
    // The pong is this binary again, in the role `pong`. It inherits the shared page's memfd
    // at the same descriptor number, named by `--fd` (it takes it back with
    // `args.role.take_fds()` and maps it: the same semaphores, at other addresses).
    // `Peer::start` keeps exactly that descriptor open across exec, makes the child die with
    // us and ignore Ctrl-C, and kills and reaps it if we leave early (the `Peer` is dropped).
    let inherit = [page.fd()];
    Peer::start(command("pong", &inherit, cpu)?, &inherit)
}

/// Starts producer number `producer` of step 2, for `items` items, on the page's unnamed
/// semaphores or on the `named` ones. Besides the page it inherits the write end of `ready`
/// and the read end of `go` (see [`produce`]).
pub fn start_producer(
    page: &Page,
    [ready, go]: [BorrowedFd<'_>; 2],
    producer: u64,
    items: u64,
    named: Option<&[String; 3]>,
) -> Result<Peer> {
    // As the pong (see `start_pong`), with two pipe ends more, and its part as flags.
    let inherit = [page.fd(), ready, go];
    let mut command = command("produce", &inherit, None)?;
    command
        .args(["--producer", &producer.to_string()])
        .args(["--items", &items.to_string()]);
    if let Some(names) = named {
        command.arg("--named").args(names);
    }
    Peer::start(command, &inherit)
}

// In the child. Our parent's death kills us (PR_SET_PDEATHSIG): no other liveness check needed.

/// The pong: answers every ping of step 1 until the page says stop.
pub fn pong(page: &Page) -> Result<()> {
    let sems = &page.sems;
    wake::pong(&sems.ping, &sems.pong, page.stop(), &|| true).context("pong")?;
    Ok(())
}

/// A producer: opens the `named` semaphores if given, says it is ready, waits for the go
/// (EOF on `go`: the parent started everyone at once), then puts its `items` items.
pub fn produce(
    page: &Page,
    mut ready: PipeWriter,
    mut go: PipeReader,
    producer: u64,
    items: u64,
    named: &[String],
) -> Result<()> {
    let named = match named {
        [] => None,
        [e, f, l] => Some([
            PosixSem::open_named(e)?,
            PosixSem::open_named(f)?,
            PosixSem::open_named(l)?,
        ]),
        other => bail!("--named takes three names, got {}", other.len()),
    };
    let (empty, full, lock) = match &named {
        Some([e, f, l]) => (e, f, l),
        None => (&page.sems.empty, &page.sems.full, &page.sems.lock),
    };
    ready.write_all(b"!").context("say ready")?;
    // Close it now: if a sibling dies before saying ready, our open copy would keep the
    // parent from seeing EOF.
    drop(ready);
    let _ = go.read(&mut [0u8; 1]); // EOF: the parent started everyone.
    let buffer = Buffer {
        empty,
        full,
        lock,
        ring: page.ring(),
    };
    buffer
        .produce(producer, items, &|| true)
        .context("produce")?;
    Ok(())
}
