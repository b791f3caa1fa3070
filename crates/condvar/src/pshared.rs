//! A ping-pong driven by a condition variable shared between processes: a process-shared
//! `pthread_cond_t` (on `CLOCK_MONOTONIC`) and a robust process-shared mutex, in shared memory,
//! initialised in place and never moved.
//!
//! Every wait sits in a predicate loop: a wake-up only says "look again". A wake-up after which
//! the predicate is still false is counted as spurious. Waits are timed (50 ms) so that a dead
//! peer is noticed (the caller's `peer_alive`); a mutex whose owner died shows up as
//! `EOWNERDEAD`, from the lock or from the wait itself. A process-shared condvar must never be
//! destroyed after a peer died (`pthread_cond_destroy` can hang): unmap it instead.

use std::cell::UnsafeCell;
use std::io;
use std::time::Duration;

/// How long one wait lasts before the waiter checks on its peer.
pub const RECHECK: Duration = Duration::from_millis(50);

/// The value that tells the other side to stop.
pub const STOP: u64 = u64::MAX;

/// The shared state, `repr(C)` so every process sees the same layout.
#[repr(C)]
pub struct Turn {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    cond: UnsafeCell<libc::pthread_cond_t>,
    /// The last value written: `2i + 1` by the pinging side, `2i + 2` by the answering side.
    value: UnsafeCell<u64>,
}

// SAFETY: the mutex and condvar are made for concurrent use; `value` is only touched with the
// mutex held.
unsafe impl Sync for Turn {}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::from_raw_os_error(rc);
    Err(io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// What one side saw while waiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Waits {
    /// Wake-ups after which the predicate was still false.
    pub spurious: u64,
    /// Waits that ran out (each followed by a liveness check).
    pub timeouts: u64,
}

impl Turn {
    /// Initialises a `Turn` in place: a robust process-shared mutex, a process-shared condvar
    /// on CLOCK_MONOTONIC, value 0.
    ///
    /// # Safety
    /// `at` must be valid, aligned, unshared storage that stays mapped and unmoved while used.
    pub unsafe fn init(at: *mut Turn) -> io::Result<()> {
        // SAFETY: zeroed attribute objects are valid storage for their init functions; every
        // pointer below is to a live local or, by the caller's contract, into `at`.
        unsafe {
            let mut ma: libc::pthread_mutexattr_t = std::mem::zeroed();
            check(
                libc::pthread_mutexattr_init(&mut ma),
                "pthread_mutexattr_init",
            )?;
            check(
                libc::pthread_mutexattr_setpshared(&mut ma, libc::PTHREAD_PROCESS_SHARED),
                "setpshared",
            )?;
            check(
                libc::pthread_mutexattr_setrobust(&mut ma, libc::PTHREAD_MUTEX_ROBUST),
                "setrobust",
            )?;
            check(
                libc::pthread_mutex_init((*at).mutex.get(), &ma),
                "pthread_mutex_init",
            )?;
            libc::pthread_mutexattr_destroy(&mut ma);
            let mut ca: libc::pthread_condattr_t = std::mem::zeroed();
            check(
                libc::pthread_condattr_init(&mut ca),
                "pthread_condattr_init",
            )?;
            check(
                libc::pthread_condattr_setpshared(&mut ca, libc::PTHREAD_PROCESS_SHARED),
                "setpshared",
            )?;
            check(
                libc::pthread_condattr_setclock(&mut ca, libc::CLOCK_MONOTONIC),
                "setclock",
            )?;
            check(
                libc::pthread_cond_init((*at).cond.get(), &ca),
                "pthread_cond_init",
            )?;
            libc::pthread_condattr_destroy(&mut ca);
            (*at).value.get().write(0);
        }
        Ok(())
    }

    /// Locks; on `Err` the lock is not held.
    fn lock(&self) -> io::Result<()> {
        // SAFETY: the mutex was initialised in place and is not moved.
        match unsafe { libc::pthread_mutex_lock(self.mutex.get()) } {
            libc::EOWNERDEAD => {
                let e = owner_died(self);
                let _ = self.unlock();
                Err(e)
            }
            rc => check(rc, "pthread_mutex_lock"),
        }
    }

    fn unlock(&self) -> io::Result<()> {
        // SAFETY: the caller holds the lock.
        check(
            unsafe { libc::pthread_mutex_unlock(self.mutex.get()) },
            "pthread_mutex_unlock",
        )
    }

    /// Sets the value and wakes the other side.
    pub fn set(&self, value: u64) -> io::Result<()> {
        self.lock()?;
        // SAFETY: the lock is held.
        unsafe { *self.value.get() = value };
        // SAFETY: the condvar was initialised in place; the lock is held, as it should be.
        let rc = unsafe { libc::pthread_cond_signal(self.cond.get()) };
        self.unlock()?;
        check(rc, "pthread_cond_signal")
    }

    /// Waits until the value is `want` (or [`STOP`]); returns what it found.
    pub fn wait_for(
        &self,
        want: u64,
        waits: &mut Waits,
        peer_alive: &dyn Fn() -> bool,
    ) -> io::Result<u64> {
        self.lock()?;
        // The lock is held on every path out of `wait_locked`.
        let result = self.wait_locked(want, waits, peer_alive);
        self.unlock()?;
        result
    }

    fn wait_locked(
        &self,
        want: u64,
        waits: &mut Waits,
        peer_alive: &dyn Fn() -> bool,
    ) -> io::Result<u64> {
        loop {
            // SAFETY: the lock is held.
            let now = unsafe { *self.value.get() };
            if now == want || now == STOP {
                return Ok(now);
            }
            let deadline = monotonic_after(RECHECK)?;
            // SAFETY: the condvar and mutex were initialised in place; the lock is held.
            let rc = unsafe {
                libc::pthread_cond_timedwait(self.cond.get(), self.mutex.get(), &deadline)
            };
            // SAFETY: the lock is held again (pthread_cond_timedwait re-acquires it).
            let after = unsafe { *self.value.get() };
            match rc {
                0 if after != want && after != STOP => waits.spurious += 1,
                0 => {}
                libc::ETIMEDOUT => {
                    waits.timeouts += 1;
                    if after != want && after != STOP && !peer_alive() {
                        return Err(io::Error::new(
                            io::ErrorKind::BrokenPipe,
                            "the other side is gone",
                        ));
                    }
                }
                libc::EOWNERDEAD => return Err(owner_died(self)),
                rc => check(rc, "pthread_cond_timedwait")?,
            }
        }
    }
}

/// The other side died holding the mutex, which this thread now holds: make it consistent, so
/// that nothing hangs on it later (the caller still unlocks it), and report the death.
fn owner_died(turn: &Turn) -> io::Error {
    // SAFETY: EOWNERDEAD means this thread now holds the mutex.
    unsafe { libc::pthread_mutex_consistent(turn.mutex.get()) };
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the other side died holding the mutex (EOWNERDEAD)",
    )
}

/// CLOCK_MONOTONIC now plus `after` (the condvar was set to that clock).
fn monotonic_after(after: Duration) -> io::Result<libc::timespec> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    let total = Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32) + after;
    Ok(libc::timespec {
        tv_sec: total.as_secs() as libc::time_t,
        tv_nsec: total.subsec_nanos() as libc::c_long,
    })
}
