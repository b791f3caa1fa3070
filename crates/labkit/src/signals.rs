//! SIGINT and SIGTERM as a flag the run checks, so that it stops cleanly and releases all it made.
//!
//! `signal_hook::flag` sets an atomic from the handler: no extra thread. signal-hook installs its
//! handlers with `SA_RESTART`, so a blocking `read` is *not* interrupted; code that blocks and must
//! notice a shutdown polls [`Shutdown::wake_fd`] (a self-pipe written by the handler) beside its
//! own descriptor. A second SIGINT or SIGTERM ends the process at once, the usual escape hatch.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nix::sys::signal::Signal;
use signal_hook::consts::{SIGINT, SIGTERM};

use std::fmt;

/// The signal that asked this process to shut down, if [`install`] was called and one came.
pub fn requested() -> Option<Signal> {
    SHUTDOWN.get().and_then(Shutdown::requested)
}

/// The process-wide shutdown flag; see [`install`].
pub struct Shutdown {
    signal: Arc<AtomicUsize>,
    wake: OwnedFd,
}

static SHUTDOWN: OnceLock<Shutdown> = OnceLock::new();

/// Installs the SIGINT/SIGTERM handlers once per process and returns the flag they set.
pub fn install() -> io::Result<&'static Shutdown> {
    if let Some(s) = SHUTDOWN.get() {
        return Ok(s);
    }
    let signal = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicBool::new(false));
    // A socketpair is the self-pipe: the handler writes a byte to one end; pollers watch the other.
    let (reader, writer) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    writer.set_nonblocking(true)?;
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the first registration exits only if the flag was already set, i.e. on
        // the second signal; the next one then sets it.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&seen))?;
        signal_hook::flag::register(sig, Arc::clone(&seen))?;
        signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)?;
        signal_hook::low_level::pipe::register(sig, writer.try_clone()?)?;
    }
    let wake = OwnedFd::from(reader);
    Ok(SHUTDOWN.get_or_init(|| Shutdown { signal, wake }))
}

impl Shutdown {
    /// The signal that asked for a shutdown, if one did.
    pub fn requested(&self) -> Option<Signal> {
        // 0 (no signal yet) is no signal number.
        Signal::try_from(self.signal.load(Ordering::Relaxed) as i32).ok()
    }

    /// `Err(Interrupted)` once a shutdown was asked for: `shutdown.check()?` in a loop.
    #[inline]
    pub fn check(&self) -> Result<(), Interrupted> {
        self.requested().map_or(Ok(()), |sig| Err(Interrupted(sig)))
    }

    /// Readable once a shutdown signal arrived: poll it beside a descriptor you block on.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}

/// The run stopped early, cleanly, because of this signal. Exit code 128 + its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted(pub Signal);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupted by {}", self.0.as_str())
    }
}

impl std::error::Error for Interrupted {}
