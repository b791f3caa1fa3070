//! POSIX message queues, the parts a program needs: create one safely, hand it to a child,
//! send and receive whole messages with priorities, and never wait forever on a dead peer.
//!
//! * A queue is created with `O_CREAT | O_EXCL`, mode 0600 and explicit attributes (without
//!   them the queue gets garbage permissions, and default sizes): `mq_maxmsg` messages of
//!   `mq_msgsize` bytes, sized to the real message, since every queue counts against the
//!   per-user quota `RLIMIT_MSGQUEUE`.
//! * On Linux an `mqd_t` is a file descriptor: a child can inherit it, and the queue's name can be
//!   unlinked as soon as both sides hold it.
//! * A message queue keeps message boundaries: one send is one receive, of exactly that size.
//!   Higher priorities are received first.
//! * Receives are timed (`mq_timedreceive`, a CLOCK_REALTIME deadline), so a waiter can look up
//!   and ask whether its peer is alive.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::mqueue::{MQ_OFlag, MqAttr, MqdT};
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;

/// How often a blocked receiver looks up to ask whether its peer is alive.
pub const RECHECK: Duration = Duration::from_millis(50);

/// A message queue descriptor, closed on drop.
pub struct Queue {
    fd: OwnedFd,
}

/// The kernel's limits for queues, as this process sees them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `/proc/sys/fs/mqueue/msg_max`: the most messages a queue may hold.
    pub msg_max: u64,
    /// `/proc/sys/fs/mqueue/msgsize_max`: the largest message.
    pub msgsize_max: u64,
    /// `/proc/sys/fs/mqueue/queues_max`: queues on the system.
    pub queues_max: u64,
    /// `RLIMIT_MSGQUEUE` (soft): bytes of queues this user may have.
    pub user_bytes: u64,
}

fn read_number(path: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.trim()
        .parse()
        .map_err(|e| io::Error::other(format!("{path}: {e}")))
}

impl Limits {
    pub fn read() -> io::Result<Limits> {
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MSGQUEUE)?;
        Ok(Limits {
            msg_max: read_number("/proc/sys/fs/mqueue/msg_max")?,
            msgsize_max: read_number("/proc/sys/fs/mqueue/msgsize_max")?,
            queues_max: read_number("/proc/sys/fs/mqueue/queues_max")?,
            user_bytes: soft,
        })
    }
}

impl Queue {
    /// Creates the queue `name` (`O_CREAT | O_EXCL`, mode 0600) for `depth` messages of
    /// `bytes` bytes, read-write; `nonblocking` adds `O_NONBLOCK`.
    pub fn create(name: &str, depth: u64, bytes: u64, nonblocking: bool) -> io::Result<Queue> {
        let attr = MqAttr::new(0, depth as _, bytes as _, 0);
        let mut flags = MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR;
        if nonblocking {
            flags |= MQ_OFlag::O_NONBLOCK;
        }
        let mqd = nix::mqueue::mq_open(name, flags, Mode::S_IRUSR | Mode::S_IWUSR, Some(&attr))
            .map_err(|e| explain(e, name))?;
        // SAFETY: mq_open just returned this descriptor and nothing else owns it; on Linux an
        // mqd_t is a file descriptor, closed like any other.
        let fd = unsafe { OwnedFd::from_raw_fd(mqd.as_raw_fd()) };
        Ok(Queue { fd })
    }

    /// A queue descriptor inherited from the parent.
    pub fn from_fd(fd: OwnedFd) -> Queue {
        Queue { fd }
    }

    /// A second descriptor for the same queue (`dup`), e.g. for a watchdog thread.
    pub fn try_clone(&self) -> io::Result<Queue> {
        Ok(Queue {
            fd: self.fd.try_clone()?,
        })
    }

    fn mqd(&self) -> MqdT {
        // SAFETY: `fd` is an open queue descriptor; MqdT does not close it (it has no Drop), so
        // this borrowed view never outlives or double-closes `self.fd`.
        unsafe { MqdT::from_raw_fd(self.fd.as_raw_fd()) }
    }

    /// Sends one message with priority `prio`, waiting while the queue is full; looks up every
    /// [`RECHECK`] and fails if `peer_alive` says no (a dead reader never makes room).
    pub fn send(&self, message: &[u8], prio: u32, peer_alive: &dyn Fn() -> bool) -> io::Result<()> {
        loop {
            let deadline = realtime_after(RECHECK)?;
            // SAFETY: the descriptor is an open queue; `message` is valid for its length;
            // `deadline` is a valid timespec.
            let rc = unsafe {
                libc::mq_timedsend(
                    self.fd.as_raw_fd(),
                    message.as_ptr().cast(),
                    message.len(),
                    prio,
                    deadline.as_ref(),
                )
            };
            if rc == 0 {
                return Ok(());
            }
            match Errno::last() {
                Errno::EINTR => {}
                Errno::ETIMEDOUT if peer_alive() => {}
                Errno::ETIMEDOUT => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the peer is gone",
                    ));
                }
                e => return Err(e.into()),
            }
        }
    }

    /// Receives one message into `buf` (which must hold `mq_msgsize` bytes); returns its length
    /// and priority. Looks up every [`RECHECK`] and fails if `peer_alive` says no.
    pub fn receive(
        &self,
        buf: &mut [u8],
        peer_alive: &dyn Fn() -> bool,
    ) -> io::Result<(usize, u32)> {
        loop {
            let deadline = realtime_after(RECHECK)?;
            let mut prio = 0;
            match nix::mqueue::mq_timedreceive(&self.mqd(), buf, &mut prio, &deadline) {
                Ok(n) => return Ok((n, prio)),
                Err(Errno::EINTR) => {}
                Err(Errno::ETIMEDOUT) if peer_alive() => {}
                Err(Errno::ETIMEDOUT) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the peer is gone",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one message, waiting as long as it takes (plain `mq_receive`, no timer): for a
    /// side that cannot outlive its peer, such as a child with `PR_SET_PDEATHSIG`.
    pub fn receive_untimed(&self, buf: &mut [u8]) -> io::Result<(usize, u32)> {
        loop {
            let mut prio = 0;
            match nix::mqueue::mq_receive(&self.mqd(), buf, &mut prio) {
                Err(Errno::EINTR) => {}
                other => return other.map(|n| (n, prio)).map_err(io::Error::from),
            }
        }
    }

    /// Sends one message, waiting as long as it takes (plain `mq_send`): see
    /// [`Queue::receive_untimed`].
    pub fn send_untimed(&self, message: &[u8], prio: u32) -> io::Result<()> {
        loop {
            match nix::mqueue::mq_send(&self.mqd(), message, prio) {
                Err(Errno::EINTR) => {}
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// Receives without waiting: `Ok(None)` if the queue is empty (`EAGAIN`). The queue must have
    /// been opened with `O_NONBLOCK`.
    pub fn try_receive(&self, buf: &mut [u8]) -> io::Result<Option<(usize, u32)>> {
        let mut prio = 0;
        match nix::mqueue::mq_receive(&self.mqd(), buf, &mut prio) {
            Ok(n) => Ok(Some((n, prio))),
            Err(Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends without waiting: `Ok(false)` if the queue is full (`EAGAIN`). `O_NONBLOCK` only.
    pub fn try_send(&self, message: &[u8], prio: u32) -> io::Result<bool> {
        match nix::mqueue::mq_send(&self.mqd(), message, prio) {
            Ok(()) => Ok(true),
            Err(Errno::EAGAIN) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for Queue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// CLOCK_REALTIME now plus `after`: the clock `mq_timed*` deadlines are on.
fn realtime_after(after: Duration) -> io::Result<TimeSpec> {
    Ok(
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?
            + TimeSpec::from_duration(after),
    )
}

/// `mq_open`'s errors in words that name the limit behind them.
fn explain(e: Errno, name: &str) -> io::Error {
    let why = match e {
        Errno::EMFILE => {
            use nix::sys::resource::{Resource, getrlimit};
            let quota = getrlimit(Resource::RLIMIT_MSGQUEUE).map_or(0, |(soft, _)| soft);
            format!(
                "EMFILE: the per-user quota RLIMIT_MSGQUEUE={quota} (bytes of every queue of this \
                 user, `ulimit -q`) is used up, or RLIMIT_NOFILE (descriptors) is reached"
            )
        }
        Errno::EINVAL => {
            "EINVAL: the size or depth is above /proc/sys/fs/mqueue/msgsize_max or msg_max"
                .to_owned()
        }
        Errno::ENOSPC => "ENOSPC: /proc/sys/fs/mqueue/queues_max queues exist already".to_owned(),
        Errno::EEXIST => "EEXIST: the name is taken (O_EXCL refuses to share it)".to_owned(),
        other => other.desc().to_owned(),
    };
    io::Error::new(io::Error::from(e).kind(), format!("mq_open({name}): {why}"))
}

/// Fills `msg` as message `seq`: the sequence number, then a pattern derived from it.
pub fn fill(msg: &mut [u8], seq: u64) {
    let n = msg.len().min(8);
    msg[..n].copy_from_slice(&seq.to_le_bytes()[..n]);
    for (i, b) in msg.iter_mut().enumerate().skip(8) {
        *b = (seq as u8).wrapping_add(i as u8);
    }
}

/// Whether `msg` is message `seq`, intact (no allocation: it runs once per message).
pub fn is_message(msg: &[u8], seq: u64) -> bool {
    let n = msg.len().min(8);
    msg[..n] == seq.to_le_bytes()[..n]
        && msg
            .iter()
            .enumerate()
            .skip(8)
            .all(|(i, &b)| b == (seq as u8).wrapping_add(i as u8))
}
