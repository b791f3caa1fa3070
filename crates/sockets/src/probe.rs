//! Step 5: what a child sees of our memory. We hand a child the address of a fresh nonce; it
//! reads its own memory there (`/proc/self/mem`), then receives the nonce through a socketpair,
//! and reports both ([`child_memory`] here, [`answer`] there).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::nonce::{Nonce, PROBE_LEN, Probe, judge, look_and_receive};
use anyhow::{Context, Result};
use labkit::Verdict;
use labkit::child::{Peer, fd_args, this_binary};

/// Step 5, our side: starts the probing child, sends it the nonce, and judges what it saw.
pub fn child_memory() -> Result<(Verdict, String)> {
    let mut nonce = Nonce::blank();
    let (mut ours, theirs) = UnixStream::pair().context("socketpair(SOCK_STREAM)")?;
    // This binary again, in the role `probe`: it inherits its end of the socketpair (`--fd`)
    // and is told where the nonce lies in our memory (`--probe ADDR`).
    let mut command = this_binary("probe")?;
    command.args(fd_args(&[theirs.as_fd()])).args(nonce.args());
    let mut peer = Peer::start(command, &[theirs.as_fd()])?;
    drop(theirs); // The child's now; ours would hide its death from us.
    // Written only now: a copy of our memory made at the child's creation holds zeros.
    nonce.fill().context("read /dev/urandom")?;
    let mut reply = [0u8; PROBE_LEN];
    ours.write_all(nonce.bytes())
        .and_then(|()| ours.read_exact(&mut reply))
        .map_err(|e| peer.death(e))?;
    peer.finish()?;
    Ok(judge(&nonce, &Probe::decode(&reply), "a Unix socketpair"))
}

/// Step 5, the child's side: looks at `addr` in its own memory, receives the nonce on
/// `socket`, and sends back what it saw.
pub fn answer(socket: OwnedFd, addr: usize) -> Result<()> {
    let mut theirs = UnixStream::from(socket);
    let seen = look_and_receive(addr, |b| theirs.read_exact(b))
        .context("read /proc/self/mem, then the socket")?;
    theirs
        .write_all(&seen.encode())
        .context("write to the socket")
}
