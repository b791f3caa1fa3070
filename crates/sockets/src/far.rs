//! The far side of every exchange of steps 1 and 2, an echo or a sink: where it runs (a child
//! process, this binary again, or a thread), how it gets its socket, and what it does
//! ([`work`]).

use std::io;
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::Variant;
use labkit::child::{Alive, Peer, cpu_arg, fd_args, this_binary};
use nix::unistd::Pid;

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

/// The far side of an exchange: a child process or a thread of ours.
pub enum Far<T> {
    Process(Peer),
    /// `None` once joined after a broken exchange.
    Thread(Option<JoinHandle<std::io::Result<T>>>),
}

impl<T> Far<T> {
    /// Pids whose CPU time belongs to this contender.
    pub fn pids(&self) -> Vec<Pid> {
        match self {
            Far::Process(peer) => vec![peer.pid()],
            Far::Thread(_) => Vec::new(),
        }
    }

    /// Turns a broken exchange into an error that says what happened to the far side.
    pub fn broke(&mut self, err: std::io::Error) -> anyhow::Error {
        if let Some(signal) = labkit::signals::requested() {
            // Not a failure: we are shutting down, and the far side may be going with us.
            return labkit::Interrupted(signal).into();
        }
        match self {
            Far::Process(peer) => peer.death(err),
            Far::Thread(slot) => {
                // If the thread failed first, its error is the story; it ends right after one.
                let started = Instant::now();
                while slot.as_ref().is_some_and(|h| !h.is_finished())
                    && started.elapsed() < Duration::from_secs(1)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                match slot.take_if(|h| h.is_finished()).map(JoinHandle::join) {
                    Some(Ok(Err(theirs))) => anyhow::Error::new(theirs)
                        .context(format!("the far thread failed (our side saw: {err})")),
                    Some(Err(_)) => {
                        anyhow::anyhow!("the far thread panicked (our side saw: {err})")
                    }
                    _ => anyhow::Error::new(err).context("the exchange with the thread broke"),
                }
            }
        }
    }

    /// Waits for a thread's result; a process has already reported its part through the pipe.
    pub fn finish(self) -> Result<Option<T>> {
        match self {
            Far::Process(peer) => peer.finish().map(|()| None),
            Far::Thread(None) => Ok(None),
            Far::Thread(Some(handle)) => match handle.join() {
                Ok(result) => Ok(Some(result.context("the far thread failed")?)),
                Err(_) => bail!("the far thread panicked"),
            },
        }
    }
}

impl<T: Send + 'static> Far<T> {
    /// Starts the far side as a thread named `name`, pinned to `cpu` (if any), running `work`.
    pub fn thread(
        name: &str,
        cpu: Option<usize>,
        work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<Far<T>> {
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                if let Some(cpu) = cpu {
                    labkit::pin::pin_current_thread(cpu)?;
                }
                work()
            })
            .with_context(|| format!("spawn the {name} thread"))?;
        Ok(Far::Thread(Some(handle)))
    }
}
