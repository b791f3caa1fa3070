//! Faults: a segmentation fault kills the whole process it happens in, every thread with it.
//!
//! [`segfault_now`] faults for real, by writing to a page mapped with no access at all, after
//! putting back the default action for SIGSEGV: Rust's runtime installs its own handler (to
//! report stack overflows), which would otherwise run first. [`no_core_dumps`] keeps a process
//! that is about to crash on purpose from leaving a core file anywhere. A panic, by contrast,
//! unwinds one thread alone ([`panic_beside_worker`]).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// No core file from this process: `RLIMIT_CORE` 0, and not dumpable, since a `core_pattern`
/// that pipes to a helper ignores the limit.
pub fn no_core_dumps() -> io::Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: PR_SET_DUMPABLE takes an integer flag and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes to an inaccessible page: the kernel sends SIGSEGV, whose default action ends the
/// process. Never returns.
pub fn segfault_now() -> ! {
    // SAFETY: a zeroed sigaction with SIG_DFL and an empty mask is a valid argument; this
    // restores the kernel's default action (terminate) in place of Rust's handler.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        libc::sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut());
    }
    // SAFETY: an anonymous private mapping of one page with no access; no Rust object lives
    // there, and the only use of the pointer is the faulting write below.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page != libc::MAP_FAILED {
        // SAFETY: not safe at all, on purpose: the page is PROT_NONE, so this write faults and
        // the kernel kills the process before the write can happen.
        unsafe { std::ptr::write_volatile(page.cast::<u8>(), 1) };
    }
    // Only if the mapping failed, or the fault was somehow caught: still end the process.
    std::process::abort()
}

/// A thread panics while its sibling does `units` units of work. Returns whether joining gave
/// `Err` for the panicking thread and `Ok` for its sibling, and the units the sibling finished;
/// an error if either thread could not be created. The panic is on purpose: the panic hook is
/// silenced meanwhile, to keep stderr clean.
pub fn panic_beside_worker(units: u64) -> Result<((bool, bool), u64)> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let worker = AtomicU64::new(0);
    let joined = std::thread::scope(|s| -> Result<_> {
        let panicking = crate::named("iso-panicker")
            .spawn_scoped(s, || panic!("on purpose"))
            .context("spawn the panicking thread")?;
        let working = crate::named("iso-worker")
            .spawn_scoped(s, || {
                (0..units).for_each(|i| worker.store(i + 1, Ordering::Relaxed))
            })
            .context("spawn the worker thread");
        // Joined before any error goes up: a scope panics if a thread that panicked is unjoined.
        let panicked = panicking.join().is_err();
        Ok((panicked, working?.join().is_ok()))
    });
    std::panic::set_hook(previous); // Put back before any error, which is then reported as usual.
    Ok((joined?, worker.load(Ordering::Relaxed)))
}
