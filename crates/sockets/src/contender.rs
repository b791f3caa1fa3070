//! Who talks to whom, through what: the contenders of steps 1 and 2, and how our end of each
//! exchange gets connected to its far side (a child process or a thread, see [`crate::far`]).

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use labkit::child::{HANG_GUARD, Watch, liveness};

use crate::far::Far;
use labkit::names::PrivateDir;
use labkit::report::format_ns;
use labkit::{CommonArgs, Measurement, Variant};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::Plan;
use crate::channel;
use crate::far::{self, Target};
use crate::stream::CHANNEL_BUFFERS;
use crate::wire::{Datagram, Stream, Wire};

/// How often a datagram receive asks whether its peer is still there.
const DGRAM_POLL: Duration = Duration::from_millis(100);

/// The means of an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mech {
    /// `socketpair(AF_UNIX, SOCK_STREAM)`: connected at birth, shared by inheritance.
    Socketpair,
    /// A Unix stream socket bound to a path, found by name.
    UnixStream,
    /// `socketpair(AF_UNIX, SOCK_DGRAM)`: message boundaries kept.
    UnixDgram,
    /// TCP on 127.0.0.1 with `TCP_NODELAY`.
    Tcp,
    /// crossbeam channels: threads only.
    Channel,
}

impl Mech {
    pub fn name(self) -> &'static str {
        match self {
            Mech::Socketpair => "socketpair",
            Mech::UnixStream => "unix-stream",
            Mech::UnixDgram => "unix-dgram",
            Mech::Tcp => "tcp",
            Mech::Channel => "channel",
        }
    }
}

/// Who talks to whom, through what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contender {
    pub variant: Variant,
    pub mech: Mech,
}

impl Contender {
    /// The contenders the flags ask for, in the order they run.
    pub fn chosen(common: &CommonArgs) -> Vec<Contender> {
        CONTENDERS
            .into_iter()
            .filter(|c| common.wants(c.variant))
            .collect()
    }

    pub fn label(self) -> String {
        format!("{}/{}", self.variant.as_str(), self.mech.name())
    }
}

pub const CONTENDERS: [Contender; 9] = {
    const fn c(variant: Variant, mech: Mech) -> Contender {
        Contender { variant, mech }
    }
    use Mech::*;
    use Variant::{Process as P, Thread as T};
    [
        c(P, Socketpair),
        c(T, Socketpair),
        c(P, UnixStream),
        c(T, UnixStream),
        c(P, UnixDgram),
        c(T, UnixDgram),
        c(P, Tcp),
        c(T, Tcp),
        c(T, Channel),
    ]
};

/// One contender's figures in one placement: one per block (the median round trip in ns, or
/// MiB/s), for the verdicts, and the measurement of all its blocks.
#[derive(Clone, Debug)]
pub struct Series {
    pub contender: Contender,
    pub blocks: Vec<f64>,
    pub measurement: Measurement,
}

impl Series {
    /// The median of all blocks, for a person: `1.2 µs`, or `-` if there were no samples.
    pub fn p50_text(&self) -> String {
        let p50 = self.measurement.p50;
        p50.map_or_else(|| "-".to_owned(), |v| format_ns(v as f64))
    }
}

/// Our end of an exchange.
pub enum Near {
    Wire(Box<dyn Wire>),
    Channel(channel::End),
}

/// Starts the far side of `c` in `role` (`echo` or `sink`): a child process or a thread, which
/// connects or inherits its end; returns our end once connected.
pub fn start(c: Contender, role: &str, plan: &Plan) -> Result<(Near, Far<u64>)> {
    let cpu = plan.placement.peer;
    if c.mech == Mech::Channel {
        let (near, far_end) = channel::pair(CHANNEL_BUFFERS);
        let far = Far::thread(role, cpu, move || channel::serve(far_end))?;
        return Ok((Near::Channel(near), far));
    }
    // The far side holds `alive` until it ends: a datagram socket has no EOF to tell us.
    let (alive, watch) = liveness().context("pipe (liveness)")?;
    let spawn = |alive, theirs, target| far::start(c, role, cpu, alive, theirs, target, plan.bytes);
    let (near, far): (Box<dyn Wire>, _) = match c.mech {
        Mech::Socketpair => {
            let (ours, theirs) = UnixStream::pair().context("socketpair(SOCK_STREAM)")?;
            let far = spawn(alive, Some(theirs.into()), Target::Inherited)?;
            (Box::new(Stream::new(ours).context("dup")?), far)
        }
        Mech::UnixDgram => {
            let (ours, theirs) = UnixDatagram::pair().context("socketpair(SOCK_DGRAM)")?;
            let far = spawn(alive, Some(theirs.into()), Target::Inherited)?;
            (watched(ours, watch)?, far)
        }
        Mech::UnixStream => {
            // The name lives in a fresh 0700 directory, and only until the far side connects.
            let dir = PrivateDir::create()?;
            let path = dir.path().join("echo.sock");
            let listener =
                UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
            let mut far = spawn(alive, None, Target::Path(path))?;
            wait_for_connection(listener.as_fd(), &watch, &mut far)?;
            let (stream, _) = listener.accept().context("accept (unix)")?;
            drop(dir); // Connected: the path has done its job; unlink it and its directory.
            (Box::new(Stream::new(stream).context("dup")?), far)
        }
        Mech::Tcp => {
            let listener = loopback_listener()?;
            let port = listener.local_addr().context("getsockname")?.port();
            let mut far = spawn(alive, None, Target::Port(port))?;
            wait_for_connection(listener.as_fd(), &watch, &mut far)?;
            let (stream, _) = listener.accept().context("accept (tcp)")?;
            stream
                .set_nodelay(true)
                .context("setsockopt(TCP_NODELAY)")?;
            (Box::new(Stream::new(stream).context("dup")?), far)
        }
        Mech::Channel => unreachable!("handled above"),
    };
    Ok((Near::Wire(near), far))
}

/// Our end of a datagram socketpair: each receive waits a little at a time, asking between
/// waits whether the far side still holds its end of the liveness pipe, or we were stopped.
fn watched(ours: UnixDatagram, watch: Watch) -> Result<Box<dyn Wire>> {
    let wire = Datagram::watched(ours, DGRAM_POLL, move || {
        !watch.is_gone(Duration::ZERO).unwrap_or(true) && labkit::signals::requested().is_none()
    })
    .context("setsockopt(SO_RCVTIMEO)")?;
    Ok(Box::new(wire))
}

/// A TCP listener on 127.0.0.1 at a port the kernel picks: reachable from this machine only.
pub fn loopback_listener() -> Result<TcpListener> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    if !listener
        .local_addr()
        .context("getsockname")?
        .ip()
        .is_loopback()
    {
        bail!("the listener is not on the loopback interface");
    }
    Ok(listener)
}

/// Waits until a connection is ready on `listener`, or the far side is gone, or the hang guard.
fn wait_for_connection(listener: BorrowedFd<'_>, watch: &Watch, far: &mut Far<u64>) -> Result<()> {
    let ms = u16::try_from(HANG_GUARD.as_millis()).unwrap_or(u16::MAX);
    loop {
        let shutdown_fd = labkit::signals::install()?;
        let mut fds = [
            PollFd::new(listener, PollFlags::POLLIN),
            PollFd::new(watch.as_fd(), PollFlags::POLLIN),
            PollFd::new(shutdown_fd.wake_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => bail!("hang guard: no connection after {} s", HANG_GUARD.as_secs()),
            Ok(_) if fds[0].any().unwrap_or(false) => return Ok(()),
            Ok(_) if fds[2].any().unwrap_or(false) => shutdown_fd.check()?,
            Ok(_) => {
                return Err(far.broke(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "it ended before connecting",
                )));
            }
            Err(nix::errno::Errno::EINTR) => {
                labkit::signals::requested().map_or(Ok(()), |s| Err(labkit::Interrupted(s)))?
            }
            Err(e) => return Err(e).context("poll (accept)"),
        }
    }
}

/// The two contenders `comm.threads-faster` sets against each other, if both ran: processes
/// over a socketpair, threads over a channel.
pub fn socketpair_and_channel(series: &[Series]) -> Option<(&Series, &Series)> {
    let find = |variant, mech| {
        let c = Contender { variant, mech };
        series.iter().find(|s| s.contender == c)
    };
    find(Variant::Process, Mech::Socketpair).zip(find(Variant::Thread, Mech::Channel))
}
