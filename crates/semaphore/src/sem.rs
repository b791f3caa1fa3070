//! Counting semaphores, three ways, behind one trait:
//!
//! * [`PosixSem`] over an **unnamed** `sem_t` initialised in place in shared memory with
//!   `pshared = 1`, so processes that map the page share it;
//! * [`PosixSem`] over a **named** semaphore from `sem_open` (`O_CREAT | O_EXCL`, mode 0600),
//!   which unrelated processes can open by name; the name should be unlinked as soon as every
//!   side has it open;
//! * [`CondvarSem`], for threads: std has no semaphore, so a count under a `Mutex` and a
//!   `Condvar` to sleep on.
//!
//! A POSIX wait is a plain `sem_wait`, as fast as C's; after every wake-up the waiter asks
//! `peer_alive` (an atomic flag in practice). Something must then wake a waiter whose peer died:
//! `main.rs` runs a watchdog thread that polls the peers' pidfds and, on a death, sets the flag
//! and posts the semaphores. A `CondvarSem` waiter looks up every [`RECHECK`] by itself.

use std::ffi::CString;
use std::io;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How often a waiter looks up to check that its peer is alive.
pub const RECHECK: Duration = Duration::from_millis(50);

/// A counting semaphore.
pub trait Semaphore: Sync {
    /// Adds one to the count, waking a waiter if there is one.
    fn post(&self) -> io::Result<()>;
    /// Takes one from the count, sleeping while it is zero; fails if `peer_alive` says no.
    fn wait(&self, peer_alive: &dyn Fn() -> bool) -> io::Result<()>;
}

/// A POSIX semaphore: unnamed in shared memory, or named.
pub struct PosixSem {
    sem: *mut libc::sem_t,
    named: bool,
}

// SAFETY: POSIX semaphores are made for concurrent use from any thread or process.
unsafe impl Send for PosixSem {}
// SAFETY: as above; every operation goes through the thread-safe sem_* functions.
unsafe impl Sync for PosixSem {}

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl PosixSem {
    /// Initialises an unnamed, process-shared semaphore at `at`, with `value`.
    ///
    /// # Safety
    /// `at` must be valid, aligned, unshared storage for a `sem_t` in memory that every user
    /// maps, and must stay there (never moved) while anyone uses it.
    pub unsafe fn init_shared(at: *mut libc::sem_t, value: u32) -> io::Result<PosixSem> {
        // SAFETY: by the caller's contract.
        if unsafe { libc::sem_init(at, 1, value) } != 0 {
            return Err(last_error("sem_init"));
        }
        Ok(PosixSem {
            sem: at,
            named: false,
        })
    }

    /// A semaphore another process initialised at `at` (see [`PosixSem::init_shared`]).
    ///
    /// # Safety
    /// `at` must point to an initialised process-shared `sem_t` that stays mapped while used.
    pub unsafe fn attach(at: *mut libc::sem_t) -> PosixSem {
        PosixSem {
            sem: at,
            named: false,
        }
    }

    /// Creates the named semaphore `name` (`O_CREAT | O_EXCL`, mode 0600: never someone else's).
    pub fn create_named(name: &str, value: u32) -> io::Result<PosixSem> {
        let c = CString::new(name).map_err(io::Error::other)?;
        // SAFETY: `c` is a valid C string; the variadic mode and value have the types sem_open
        // expects (mode_t and unsigned int, promoted).
        let sem = unsafe {
            libc::sem_open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
                value,
            )
        };
        if sem == libc::SEM_FAILED {
            return Err(last_error(&format!("sem_open({name}, O_CREAT|O_EXCL)")));
        }
        Ok(PosixSem { sem, named: true })
    }

    /// Opens the existing named semaphore `name`.
    pub fn open_named(name: &str) -> io::Result<PosixSem> {
        let c = CString::new(name).map_err(io::Error::other)?;
        // SAFETY: `c` is a valid C string; without O_CREAT no further arguments are read.
        let sem = unsafe { libc::sem_open(c.as_ptr(), 0) };
        if sem == libc::SEM_FAILED {
            return Err(last_error(&format!("sem_open({name})")));
        }
        Ok(PosixSem { sem, named: true })
    }
}

impl Drop for PosixSem {
    fn drop(&mut self) {
        if self.named {
            // SAFETY: `sem` came from sem_open and is closed once. (An unnamed semaphore is not
            // destroyed: a peer may have died mid-wait; unmapping the page is enough.)
            unsafe { libc::sem_close(self.sem) };
        }
    }
}

impl Semaphore for PosixSem {
    fn post(&self) -> io::Result<()> {
        // SAFETY: `sem` is a live semaphore (initialised or opened, not closed).
        if unsafe { libc::sem_post(self.sem) } != 0 {
            Err(last_error("sem_post"))
        } else {
            Ok(())
        }
    }

    fn wait(&self, peer_alive: &dyn Fn() -> bool) -> io::Result<()> {
        loop {
            // SAFETY: `sem` is a live semaphore.
            if unsafe { libc::sem_wait(self.sem) } == 0 {
                // A wake-up may be the watchdog's, telling us the peer is gone.
                return if peer_alive() {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the peer is gone",
                    ))
                };
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                _ => return Err(last_error("sem_wait")),
            }
        }
    }
}

/// A semaphore for threads: a count under a `Mutex`, and a `Condvar` to sleep on.
pub struct CondvarSem {
    count: Mutex<u64>,
    nonzero: Condvar,
}

impl CondvarSem {
    pub fn new(value: u64) -> CondvarSem {
        CondvarSem {
            count: Mutex::new(value),
            nonzero: Condvar::new(),
        }
    }
}

impl Semaphore for CondvarSem {
    fn post(&self) -> io::Result<()> {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.nonzero.notify_one();
        Ok(())
    }

    fn wait(&self, peer_alive: &dyn Fn() -> bool) -> io::Result<()> {
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        // Always in a loop: a wake-up says "look again", not "it is yours".
        while *count == 0 {
            let (guard, timeout) = self
                .nonzero
                .wait_timeout(count, RECHECK)
                .unwrap_or_else(|p| p.into_inner());
            count = guard;
            if timeout.timed_out() && *count == 0 && !peer_alive() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the peer is gone",
                ));
            }
        }
        *count -= 1;
        Ok(())
    }
}
