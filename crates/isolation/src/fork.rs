//! `fork`: the child gets a copy of the parent's memory (copy-on-write), not a share of it.
//!
//! Every function here forks while the process has a single thread, so the child is a complete
//! copy with no lock held by a thread that did not come along; the child does its small part
//! and leaves with `_exit`, never returning into the parent's code. Nothing here knows about
//! measurement or reports; it can be lifted out on its own.

use std::io::{self, PipeReader, Read, Write};
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// A global the demos write to: one per process after `fork`, one for all threads.
pub static GLOBAL: AtomicU64 = AtomicU64::new(1);

/// The threads this process has now (`Threads:` of `/proc/self/status`).
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// Forks; the child runs `child` and `_exit`s with its result (101 if it panicked). Refuses
/// unless this process has exactly one thread.
pub fn fork_and_run(child: impl FnOnce() -> i32) -> io::Result<Pid> {
    // A thread that was just joined may still be on its way out of the kernel; give it a moment.
    let mut threads = thread_count()?;
    let started = Instant::now();
    while threads != 1 && started.elapsed() < std::time::Duration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(1));
        threads = thread_count()?;
    }
    if threads != 1 {
        return Err(io::Error::other(format!(
            "refusing to fork with {threads} threads: the child would hold only this one, and any \
             lock another held (malloc's, say) would stay locked forever"
        )));
    }
    // SAFETY: the process has one thread (checked above, and nothing in this function starts
    // one), so the child is a consistent copy; it runs `child` and ends with `_exit`, so it
    // never unwinds into, or returns through, frames that belong to the parent.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = catch_unwind(AssertUnwindSafe(child)).unwrap_or(101);
            // SAFETY: `_exit` ends the child at once, without running the parent's atexit
            // handlers or flushing its stdio buffers a second time.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Ok(child),
    }
}

/// Waits for a child and returns how it ended.
pub fn wait(pid: Pid) -> io::Result<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// What one side saw of the shared-looking values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub global: u64,
    pub heap: u64,
    /// The address of the heap value in that process's address space.
    pub heap_addr: usize,
}

impl Seen {
    fn encode(self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.global.to_le_bytes());
        out[8..16].copy_from_slice(&self.heap.to_le_bytes());
        out[16..].copy_from_slice(&(self.heap_addr as u64).to_le_bytes());
        out
    }

    fn decode(b: [u8; 24]) -> Seen {
        let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Seen {
            global: word(0),
            heap: word(8),
            heap_addr: word(16) as usize,
        }
    }
}

/// What the copy-on-write demo observed.
#[derive(Clone, Copy, Debug)]
pub struct CopyOnWrite {
    /// What the child saw after writing `child_value` to both.
    pub child: Seen,
    /// What the parent saw afterwards.
    pub parent: Seen,
    /// What `process_vm_readv` read at the child's heap address while the child lived, or
    /// the error the kernel gave (EPERM where ptrace access is not allowed).
    pub read_through_kernel: Result<u64, nix::errno::Errno>,
    pub status: WaitStatus,
}

/// Forks a child that writes `child_value` to [`GLOBAL`] and to `*heap`, reports what it sees,
/// and waits while the parent tries to read its memory through the kernel.
pub fn copy_on_write(heap: &mut u64, child_value: u64) -> io::Result<CopyOnWrite> {
    let (mut report_rx, report_tx) = std::io::pipe()?;
    let (go_rx, go_tx) = std::io::pipe()?;
    let heap_addr = std::ptr::from_mut(heap) as usize;
    let go_tx_fd = go_tx.as_raw_fd();
    let pid = fork_and_run(|| {
        // The child's copy of `go`'s write end must close, or its read below never sees EOF.
        // SAFETY: this copy belongs to the child's own descriptor table, and the child never
        // drops the `PipeWriter` that owns the number (it leaves with `_exit`).
        unsafe { libc::close(go_tx_fd) };
        GLOBAL.store(child_value, Ordering::SeqCst);
        *heap = child_value;
        // The child's own view: the address it wrote at, as it sees it.
        let seen = Seen {
            global: GLOBAL.load(Ordering::SeqCst),
            heap: *heap,
            heap_addr: std::ptr::from_mut(&mut *heap) as usize,
        };
        if (&report_tx).write_all(&seen.encode()).is_err() {
            return 1;
        }
        // Stay alive, our heap value in place, until the parent has looked.
        let _ = (&go_rx).read(&mut [0u8; 1]);
        0
    })?;
    // Our copies of the child's ends must go, or EOF would never come on either pipe.
    drop(report_tx);
    let mut bytes = [0u8; 24];
    let reported = report_rx.read_exact(&mut bytes);
    let read_through_kernel = if reported.is_ok() {
        read_u64(pid, heap_addr)
    } else {
        Err(nix::errno::Errno::ESRCH)
    };
    drop(go_tx); // EOF on the child's `go` pipe: it may leave.
    let status = wait(pid)?;
    // A child that died (killed, say) sent nothing whole: its status is the story, not EOF.
    if matches!(status, WaitStatus::Exited(_, 0)) {
        reported?;
    }
    let parent = Seen {
        global: GLOBAL.load(Ordering::SeqCst),
        heap: *heap,
        heap_addr,
    };
    Ok(CopyOnWrite {
        child: Seen::decode(bytes),
        parent,
        read_through_kernel,
        status,
    })
}

/// Reads 8 bytes at `addr` in process `pid` through the kernel (`process_vm_readv`), which
/// needs ptrace access to it: the same user and, under Yama, an ancestor or CAP_SYS_PTRACE.
pub fn read_u64(pid: Pid, addr: usize) -> Result<u64, nix::errno::Errno> {
    let mut word = [0u8; 8];
    let remote = [RemoteIoVec { base: addr, len: 8 }];
    let n = process_vm_readv(pid, &mut [io::IoSliceMut::new(&mut word)], &remote)?;
    if n != 8 {
        return Err(nix::errno::Errno::EIO);
    }
    Ok(u64::from_le_bytes(word))
}

/// Times the first write to each page of `buf`, one byte per page, into `times_ns`.
pub fn time_first_writes(buf: &mut [u8], page: usize, times_ns: &mut [u64]) {
    for (chunk, slot) in buf.chunks_mut(page).zip(times_ns.iter_mut()) {
        let start = Instant::now();
        // A volatile write: the compiler may not skip or merge it.
        // SAFETY: `chunk` is a valid, exclusive, non-empty slice; writing its first byte is in
        // bounds.
        unsafe { std::ptr::write_volatile(chunk.as_mut_ptr(), 1) };
        *slot = start.elapsed().as_nanos() as u64;
    }
}

/// Forks a child that times its first write to each page of `buf` (each one a copy-on-write
/// fault: the page is still shared with us) and sends the times back.
pub fn time_first_writes_in_child(
    buf: &mut [u8],
    page: usize,
    times_ns: &mut [u64],
) -> io::Result<WaitStatus> {
    let (rx, tx) = std::io::pipe()?;
    let pid = fork_and_run(|| {
        time_first_writes(buf, page, times_ns);
        let bytes: Vec<u8> = times_ns.iter().flat_map(|t| t.to_le_bytes()).collect();
        if (&tx).write_all(&bytes).is_ok() {
            0
        } else {
            1
        }
    })?;
    drop(tx);
    let received = read_times(rx, times_ns);
    let status = wait(pid)?;
    // A child that died (killed, say) sent nothing whole: its status is the story, not EOF.
    if matches!(status, WaitStatus::Exited(_, 0)) {
        received?;
    }
    Ok(status)
}

fn read_times(mut rx: PipeReader, times_ns: &mut [u64]) -> io::Result<()> {
    let mut bytes = vec![0u8; times_ns.len() * 8];
    rx.read_exact(&mut bytes)?;
    for (t, b) in times_ns.iter_mut().zip(bytes.chunks_exact(8)) {
        *t = u64::from_le_bytes(b.try_into().expect("8 bytes"));
    }
    Ok(())
}
