//! File descriptors: one table per process, shared by its threads.
//!
//! A descriptor is an index into the process's table; the entry points to an open file
//! *description* (the file, its offset, its flags). Threads share the table, so one thread's
//! `close` is every thread's. `fork` copies the table: the child's `close` leaves ours alone,
//! but both entries point to the same description, so the child's `read` moves our offset.
//!
//! These demos use raw descriptors they own outright: closing a descriptor that a `File` or
//! `OwnedFd` still owns would break Rust's I/O safety (debug builds abort on it).

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::fork::{fork_and_run, wait};

/// Opens `path` read-only, returning a raw descriptor the caller must close.
pub fn open_raw(path: &Path) -> io::Result<RawFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

/// Whether `fd` is open in this process (`fcntl(F_GETFD)` fails with EBADF otherwise).
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags >= 0
}

/// Reads up to `n` bytes from `fd` at its current offset.
pub fn read_raw(fd: RawFd, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    // SAFETY: `buf` is valid for `n` bytes of writes.
    let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), n) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(got as usize);
    Ok(buf)
}

/// Closes `fd`.
pub fn close_raw(fd: RawFd) -> io::Result<()> {
    // SAFETY: the caller owns `fd` and does not use it after this.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a child exited with status 0 (its part of a demo succeeded).
fn exited_ok(status: nix::sys::wait::WaitStatus) -> bool {
    matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0))
}

/// What the descriptor demos observed.
#[derive(Debug)]
pub struct Tables {
    /// After another thread closed it, the descriptor was closed for us too.
    pub closed_by_thread: bool,
    /// After a child closed its copy, ours still worked (and read these bytes).
    pub open_after_child_closed: bool,
    /// A child read some bytes; our next read then returned these bytes.
    pub read_after_child: Vec<u8>,
    /// How the closing child and the reading child ended (both should exit 0).
    pub children: [nix::sys::wait::WaitStatus; 2],
}

/// Runs the three descriptor demos on `path`, a file whose content the caller knows.
/// Forks, so call it while the process has one thread.
pub fn demonstrate(path: &Path, moved_by: usize) -> io::Result<Tables> {
    // 1. A thread closes a descriptor: it is gone for the whole process.
    let fd = open_raw(path)?;
    std::thread::scope(|s| {
        crate::named("iso-closer")
            .spawn_scoped(s, || close_raw(fd))?
            .join()
            .expect("the closing thread does not panic")
    })?;
    let closed_by_thread = !is_open(fd);
    if !closed_by_thread {
        close_raw(fd)?;
    }

    // 2. A child closes its copy: ours is untouched.
    let fd = open_raw(path)?;
    let child = fork_and_run(|| if close_raw(fd).is_ok() { 0 } else { 1 })?;
    let closer = wait(child)?;
    let closed_in_child = exited_ok(closer);
    let open_after_child_closed = closed_in_child && is_open(fd);

    // 3. A child reads: the offset it moves is ours too, since the description is shared.
    let child = fork_and_run(|| match read_raw(fd, moved_by) {
        Ok(bytes) if bytes.len() == moved_by => 0,
        _ => 1,
    })?;
    let reader = wait(child)?;
    let read_in_child = exited_ok(reader);
    let mut read_after_child = read_raw(fd, moved_by)?;
    if !read_in_child {
        read_after_child.clear(); // The child did not read: there is nothing to show.
    }
    close_raw(fd)?;
    Ok(Tables {
        closed_by_thread,
        open_after_child_closed,
        read_after_child,
        children: [closer, reader],
    })
}
