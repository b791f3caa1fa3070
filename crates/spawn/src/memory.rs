//! Memory: what a process costs, what a thread costs, and how a big parent makes `fork` slower.
//!
//! Figures come from `/proc`: `Pss` of `smaps_rollup` (each page divided among the processes
//! that share it, so forked children sharing copy-on-write pages are not counted twice),
//! `VmRSS` and `VmPTE` (the page tables, kernel memory that RSS does not show) of `status`.

use std::io;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

/// A `kB` field of a `/proc/<pid>/…` file.
fn kib_field(path: &str, field: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no {field} in {path}")))
}

/// Memory available now (`MemAvailable`), MiB.
pub fn available_mib() -> io::Result<u64> {
    Ok(kib_field("/proc/meminfo", "MemAvailable:")? / 1024)
}

/// Proportional set size of `pid`, KiB.
pub fn pss_kib(pid: u32) -> io::Result<u64> {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// Resident set size of `pid`, KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Page-table memory of `pid`, KiB.
pub fn pte_kib(pid: u32) -> io::Result<u64> {
    kib_field(&format!("/proc/{pid}/status"), "VmPTE:")
}

/// A buffer of `mib` MiB with every page written, so it is resident (`vec![0; n]` alone
/// maps zero pages lazily and touches nothing).
pub fn resident_buffer(mib: usize, page: usize) -> Vec<u8> {
    let mut buf = vec![0u8; mib << 20];
    for p in buf.chunks_mut(page) {
        // SAFETY: `p` is a valid, non-empty, exclusive slice; a volatile write keeps the
        // compiler from eliding the store to memory it knows is zero.
        unsafe { std::ptr::write_volatile(p.as_mut_ptr(), 1) };
    }
    buf
}

/// Memory added by `k` idle forked children: total PSS (ours and theirs) and their page tables,
/// per child, in KiB. The children sleep until they are killed, right after the count.
///
/// # Safety
/// The process must have a single thread (see `create::fork_exit_wait`).
pub unsafe fn per_forked_child(k: usize) -> io::Result<f64> {
    let me = std::process::id();
    let before = pss_kib(me)?;
    let parent = me as libc::pid_t;
    let mut children = Idle(Vec::new());
    for _ in 0..k {
        // SAFETY: single-threaded by this function's contract; the child makes only plain
        // system calls (prctl, getppid, pause, _exit) until the SIGKILL that ends it.
        match unsafe { fork() }? {
            // SAFETY: only plain system calls with no memory arguments, then `_exit` or a
            // `pause` that the SIGKILL below ends.
            ForkResult::Child => unsafe {
                // Die with the parent, whatever happens to it; leave if it is already gone.
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                    || libc::getppid() != parent
                {
                    libc::_exit(1);
                }
                loop {
                    libc::pause();
                }
            },
            ForkResult::Parent { child } => children.0.push(child),
        }
    }
    // Let every child settle, its stack and first pages in place.
    std::thread::sleep(Duration::from_millis(20));
    let total = pss_kib(me)? + children_kib(&children.0)?;
    drop(children); // SIGKILL and reap every one.
    Ok(total.saturating_sub(before) as f64 / k as f64)
}

/// PSS plus page tables of `children`, in KiB. A child that died (killed from outside) has no
/// memory left to read: the error says so and how it died, rather than ESRCH.
fn children_kib(children: &[nix::unistd::Pid]) -> io::Result<u64> {
    let mut total = 0;
    for &c in children {
        let pid = c.as_raw() as u32;
        match pss_kib(pid).and_then(|pss| Ok(pss + pte_kib(pid)?)) {
            Ok(kib) => total += kib,
            Err(e) => {
                return Err(match waitpid(c, Some(WaitPidFlag::WNOHANG)) {
                    Ok(status) if !matches!(status, WaitStatus::StillAlive) => io::Error::other(
                        format!("idle child {pid} died before it was measured: {status:?}"),
                    ),
                    _ => e,
                });
            }
        }
    }
    Ok(total)
}

/// Idle children, killed (SIGKILL cannot be caught or ignored) and reaped when dropped, on
/// every path out.
struct Idle(Vec<nix::unistd::Pid>);

impl Drop for Idle {
    fn drop(&mut self) {
        for &c in &self.0 {
            let _ = kill(c, Signal::SIGKILL);
            let _ = waitpid(c, None);
        }
    }
}

/// Memory added by `k` idle threads, per thread, in KiB (PSS of this process); the error of a
/// thread that could not be created.
pub fn per_thread(k: usize) -> io::Result<f64> {
    let me = std::process::id();
    let before = pss_kib(me)?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let mut threads = Vec::new();
    for _ in 0..k {
        let rx = std::sync::Arc::clone(&rx);
        // On an error, `tx` goes with this frame: the threads already made wake up and end.
        threads.push(
            std::thread::Builder::new()
                .name("spawn-idle".into())
                .spawn(move || {
                    let _ = rx.lock().map(|r| r.recv());
                })?,
        );
    }
    std::thread::sleep(Duration::from_millis(20));
    let after = pss_kib(me)?;
    drop(tx);
    for t in threads {
        let _ = t.join();
    }
    Ok(after.saturating_sub(before) as f64 / k as f64)
}

/// Memory added by `k` idle async tasks, per task, in KiB (PSS of this process): each waits on
/// one semaphore, on a current-thread runtime of its own. (A task's memory is allocated when
/// it is spawned, future and all; closing the semaphore ends every task, polled yet or not.)
pub fn per_task(k: usize) -> io::Result<f64> {
    let runtime = crate::create::task_runtime()?;
    let me = std::process::id();
    runtime.block_on(async {
        let before = pss_kib(me)?;
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        let tasks: Vec<_> = (0..k)
            .map(|_| {
                let gate = std::sync::Arc::clone(&gate);
                tokio::spawn(async move { gate.acquire().await.is_err() })
            })
            .collect();
        tokio::task::yield_now().await; // Let them run to their wait.
        let after = pss_kib(me)?;
        gate.close();
        for task in tasks {
            if !task.await.map_err(io::Error::other)? {
                return Err(io::Error::other("an idle task was let through"));
            }
        }
        Ok(after.saturating_sub(before) as f64 / k as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `cargo xtask torture`: an idle child killed before it was measured gave ESRCH.
    #[test]
    fn a_child_killed_before_it_is_measured_is_named() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        assert!(children_kib(&[pid]).is_ok());
        kill(pid, Signal::SIGKILL).unwrap();
        // Until it is reaped it is a zombie, whose memory can no longer be read.
        std::thread::sleep(Duration::from_millis(50));
        let err = children_kib(&[pid]).unwrap_err().to_string();
        assert!(err.contains("died before it was measured"), "{err}");
        assert!(err.contains("SIGKILL"), "{err}");
        let _ = child.wait(); // Already reaped by children_kib: ECHILD is fine.
    }
}
