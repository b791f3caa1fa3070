//! The far side of every exchange of steps 1 and 2, an echo or a sink: where it runs (a child
//! process, this binary again, or a thread), how it gets its socket, and what it does
//! ([`work`]).

use std::io;
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;

use anyhow::Result;
use labkit::Variant;
use labkit::child::{Alive, Far, Peer, cpu_arg, fd_args, this_binary};

use crate::contender::{Contender, Mech};
use crate::stream::STREAM_FRAME;
use crate::wire::{self, Datagram, Stream, Wire};

/// Where a far side connects: a socket path or a loopback port (a child gets it as flags).
#[derive(Clone, Debug)]
pub enum Target {
    Inherited,
    Path(PathBuf),
    Port(u16),
}

/// Starts the far side of `c` in `role` (`echo` or `sink`), on `cpu` if given: a child process
/// (given `alive` and `theirs` by inheritance, `target` and the frame size as flags) or a
/// thread (given them by move), running [`work`].
pub fn start(
    c: Contender,
    role: &str,
    cpu: Option<usize>,
    alive: Alive,
    theirs: Option<OwnedFd>,
    target: Target,
    bytes: usize,
) -> Result<Far<u64>> {
    let echo = role == "echo";
    if c.variant == Variant::Process {
        // The far side is this binary again, in the role `echo` or `sink`. It inherits the
        // write end of the liveness pipe and, for a socketpair, its end of the pair, at the same
        // descriptor numbers, named by `--fd` in that order (it takes them back with
        // `args.role.take_fds()`); a socket found by name or by port is given as `--path` or
        // `--port` instead, and `--cpu` pins it where the placement says. `Peer::start` makes
        // it die with us and ignore Ctrl-C, keeps exactly these descriptors open across exec
        // (every other one is close-on-exec), and kills and reaps it if we drop it early.
        let mut fds = vec![alive.as_fd()];
        fds.extend(theirs.as_ref().map(AsFd::as_fd));
        let mut command = this_binary(role)?;
        command.args(fd_args(&fds)).args(cpu_arg(cpu));
        command.args(["--transport", c.mech.name(), "--bytes", &bytes.to_string()]);
        match &target {
            Target::Inherited => {}
            Target::Path(path) => {
                command.arg("--path").arg(path);
            }
            Target::Port(port) => {
                command.args(["--port", &port.to_string()]);
            }
        }
        let peer = Peer::start(command, &fds)?;
        // Our copies of `alive` and `theirs` close here: the child holds the only ones.
        return Ok(Far::Process(peer));
    }
    let (mech, max) = (c.mech, max_frame(echo, bytes));
    Far::thread(role, cpu, move || {
        let _alive = alive; // Closed when this thread ends, however it ends.
        work(mech, echo, max, theirs, target)
    })
}

/// The largest frame a far side receives: a ping-pong's `--bytes`, or a stream's frame.
pub fn max_frame(echo: bool, bytes: usize) -> usize {
    if echo { bytes } else { STREAM_FRAME }
}

/// The far side's whole job, in a thread or a child: connect (or take the inherited socket),
/// then [`wire::serve`] until the near side is done.
pub fn work(
    mech: Mech,
    echo: bool,
    max_frame: usize,
    fd: Option<OwnedFd>,
    target: Target,
) -> io::Result<u64> {
    let missing = || io::Error::new(io::ErrorKind::InvalidInput, "no socket to serve on");
    let mut wire: Box<dyn Wire> = match (mech, target) {
        (Mech::Socketpair, _) => Box::new(Stream::new(UnixStream::from(fd.ok_or_else(missing)?))?),
        (Mech::UnixDgram, _) => {
            Box::new(Datagram::new(UnixDatagram::from(fd.ok_or_else(missing)?)))
        }
        (Mech::UnixStream, Target::Path(path)) => {
            Box::new(Stream::new(UnixStream::connect(path)?)?)
        }
        (Mech::Tcp, Target::Port(port)) => {
            let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
            stream.set_nodelay(true)?;
            Box::new(Stream::new(stream)?)
        }
        _ => return Err(missing()),
    };
    wire::serve(&mut *wire, echo, max_frame)
}
