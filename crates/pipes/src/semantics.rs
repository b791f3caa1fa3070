//! The pipe semantics that surprise people, each as a small function:
//!
//! * a reader sees EOF only once *every* write end is closed, its own copy included;
//! * a write to a pipe that nobody can read fails with EPIPE (when SIGPIPE is ignored,
//!   as Rust programs do; otherwise SIGPIPE kills the writer);
//! * a FIFO is a pipe with a name in the file system, so processes that share no
//!   descriptor can meet through it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

use crate::pingpong::{fill, read_message, verify};

/// What one guarded read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// This many bytes arrived.
    Data(usize),
    /// End of file: every write end is closed.
    Eof,
    /// Nothing within the guard time: some write end is still open somewhere.
    Nothing,
}

impl std::fmt::Display for Next {
    /// For people: "5 bytes read", "EOF", "no EOF".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Next::Data(n) => write!(f, "{n} bytes read"),
            Next::Eof => f.write_str("EOF"),
            Next::Nothing => f.write_str("no EOF"),
        }
    }
}

/// Waits at most `guard` for `reader` to be readable, then reads once. A hang guard, so that a
/// forgotten write end shows up as [`Next::Nothing`] instead of a program that never ends.
pub fn read_within(
    reader: &mut (impl Read + AsFd),
    buf: &mut [u8],
    guard: Duration,
) -> io::Result<Next> {
    let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
    let ms = u16::try_from(guard.as_millis()).unwrap_or(u16::MAX);
    if poll(&mut fds, PollTimeout::from(ms))? == 0 {
        return Ok(Next::Nothing);
    }
    // POLLHUP without POLLIN also lands here: read then returns 0, which is EOF.
    match reader.read(buf)? {
        0 => Ok(Next::Eof),
        n => Ok(Next::Data(n)),
    }
}

/// Whether SIGPIPE is ignored in this process, so that a write to a pipe with no reader
/// returns EPIPE instead of killing the process. (Rust's runtime ignores it before `main`.)
pub fn sigpipe_ignored() -> io::Result<bool> {
    // SAFETY: a zeroed sigaction is a valid out-parameter; a null `act` only reads the current
    // disposition, changing nothing.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; `act` is null, so nothing is installed.
    if unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(current.sa_sigaction == libc::SIG_IGN)
}

/// Makes a FIFO at `path` with mode 0600; fails if anything already has that name.
pub fn make_fifo(path: &Path) -> io::Result<()> {
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR).map_err(io::Error::from)
}

/// Opens the FIFO's read end without waiting for a writer (`O_NONBLOCK`): a plain open would
/// block until one comes, forever if the writer died first.
pub fn open_fifo_reader(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Makes `file` blocking again, once a writer is known to be there.
pub fn set_blocking(file: &File) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(file, FcntlArg::F_GETFL)?);
    fcntl(file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

/// What the FIFO's reader saw first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Data is waiting: the writer opened the FIFO and wrote.
    Data,
    /// The writer's liveness pipe reports it gone before any data came.
    WriterGone,
    /// Neither within the guard time.
    Timeout,
}

/// Waits until the FIFO has data, or the writer (watched through `writer_alive`, a liveness
/// pipe's read end) is gone. Until a writer has opened a FIFO, poll reports nothing on it.
pub fn wait_for_writer(
    fifo: &File,
    writer_alive: BorrowedFd<'_>,
    guard: Duration,
) -> io::Result<Arrival> {
    let mut fds = [
        PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
        PollFd::new(writer_alive, PollFlags::POLLIN),
    ];
    let ms = u16::try_from(guard.as_millis()).unwrap_or(u16::MAX);
    if poll(&mut fds, PollTimeout::from(ms))? == 0 {
        return Ok(Arrival::Timeout);
    }
    let has = |fd: &PollFd<'_>, flag| fd.revents().is_some_and(|r| r.contains(flag));
    if has(&fds[0], PollFlags::POLLIN) {
        Ok(Arrival::Data)
    } else {
        Ok(Arrival::WriterGone)
    }
}

/// The writer's side: opens the FIFO by name (it inherited no descriptor for it) and writes
/// `count` numbered messages of `bytes` bytes.
pub fn write_messages(path: &Path, count: u64, bytes: usize) -> io::Result<()> {
    let mut fifo = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut msg = vec![0; bytes];
    for seq in 0..count {
        fill(&mut msg, seq);
        fifo.write_all(&msg)?;
    }
    Ok(())
}

/// The reader's side: reads numbered messages until EOF, checking each; returns the count.
pub fn read_messages(mut fifo: impl Read, bytes: usize) -> io::Result<u64> {
    let mut msg = vec![0; bytes];
    let mut count = 0;
    while read_message(&mut fifo, &mut msg)? {
        verify(&msg, count)?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eof_waits_for_our_own_write_end() {
        let (mut r, mut w) = std::io::pipe().unwrap();
        let w2 = w.try_clone().unwrap();
        w.write_all(b"hi").unwrap();
        drop(w);
        let mut buf = [0; 8];
        assert_eq!(
            read_within(&mut r, &mut buf, Duration::from_millis(10)).unwrap(),
            Next::Data(2)
        );
        assert_eq!(
            read_within(&mut r, &mut buf, Duration::from_millis(20)).unwrap(),
            Next::Nothing
        );
        drop(w2);
        assert_eq!(
            read_within(&mut r, &mut buf, Duration::from_secs(5)).unwrap(),
            Next::Eof
        );
    }

    #[test]
    fn rust_programs_ignore_sigpipe() {
        assert!(sigpipe_ignored().unwrap());
        let (r, mut w) = std::io::pipe().unwrap();
        drop(r);
        let err = w.write_all(b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
    }
}
