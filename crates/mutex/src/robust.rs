//! A counter guarded by a robust, process-shared `pthread_mutex_t`, living in shared memory.
//!
//! * **Process-shared** (`PTHREAD_PROCESS_SHARED`): the lock's futex is keyed by the physical
//!   page, so a waiter in another process is woken. `std::sync::Mutex` uses a process-private
//!   futex: placed in shared memory, a waiter in another process would never be woken.
//! * **Robust** (`PTHREAD_MUTEX_ROBUST`): if the owner dies holding it, the kernel hands it to
//!   the next locker with `EOWNERDEAD`. That locker must repair the data, call
//!   `pthread_mutex_consistent`, then unlock; unlocking without that makes the mutex
//!   `ENOTRECOVERABLE` for good. (A non-robust mutex would simply never be released.)
//! * The struct is initialised in place and never moved: a `pthread_mutex_t` may not be copied.
//!
//! The guarded data records an update in progress (`dirty`), so a repair can tell whether the
//! dead owner left it half done.

use std::cell::UnsafeCell;
use std::io;
use std::time::Duration;

/// The mutex and the data it guards, `repr(C)` so every process sees the same layout.
#[repr(C)]
pub struct Guarded {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    counter: UnsafeCell<u64>,
    dirty: UnsafeCell<u64>,
}

// SAFETY: the mutex is built for concurrent use, and `counter`/`dirty` are only touched while it
// is held (see `increment` and `repair`).
unsafe impl Sync for Guarded {}

/// How a lock was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locked {
    /// The usual case.
    Clean,
    /// The previous owner died holding it: repair, then [`Guarded::make_consistent`].
    OwnerDied,
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::Error::from_raw_os_error(rc).kind(),
            format!("{what}: {}", io::Error::from_raw_os_error(rc)),
        ))
    }
}

impl Guarded {
    /// Initialises a `Guarded` in place (robust, process-shared mutex; counter 0).
    ///
    /// # Safety
    /// `at` must point to writable, suitably aligned memory for a `Guarded` that no one else
    /// uses yet, and that stays where it is for as long as anyone uses it.
    pub unsafe fn init(at: *mut Guarded) -> io::Result<()> {
        // SAFETY: a zeroed attribute object is valid storage for pthread_mutexattr_init.
        let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
        // SAFETY: `attr` is valid storage; each call gets a pointer to it.
        unsafe {
            check(
                libc::pthread_mutexattr_init(&mut attr),
                "pthread_mutexattr_init",
            )?;
            check(
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                "setpshared",
            )?;
            check(
                libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                "setrobust",
            )?;
        }
        // SAFETY: by the caller's contract `at` is valid and unshared; the fields are written
        // through raw pointers, before any reference to them exists.
        let result = unsafe {
            (*at).counter.get().write(0);
            (*at).dirty.get().write(0);
            check(
                libc::pthread_mutex_init((*at).mutex.get(), &attr),
                "pthread_mutex_init",
            )
        };
        // SAFETY: `attr` was initialised above and is destroyed once.
        unsafe { libc::pthread_mutexattr_destroy(&mut attr) };
        result
    }

    /// Locks, waiting at most `guard` (a hang guard: `pthread_mutex_timedlock` takes a
    /// CLOCK_REALTIME deadline). A dead owner is reported as [`Locked::OwnerDied`], not waited for.
    pub fn lock(&self, guard: Duration) -> io::Result<Locked> {
        let deadline = realtime_after(guard)?;
        // SAFETY: the mutex was initialised in place and is not moved; `deadline` is valid.
        let rc = unsafe { libc::pthread_mutex_timedlock(self.mutex.get(), &deadline) };
        match rc {
            0 => Ok(Locked::Clean),
            libc::EOWNERDEAD => Ok(Locked::OwnerDied),
            libc::ETIMEDOUT => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("hang guard: no lock within {guard:?}"),
            )),
            rc => check(rc, "pthread_mutex_timedlock").map(|()| Locked::Clean),
        }
    }

    /// Unlocks a mutex this thread holds.
    pub fn unlock(&self) -> io::Result<()> {
        // SAFETY: the caller holds the lock (every call follows a successful `lock`).
        check(
            unsafe { libc::pthread_mutex_unlock(self.mutex.get()) },
            "pthread_mutex_unlock",
        )
    }

    /// After [`Locked::OwnerDied`] and a repair: the mutex is whole again.
    pub fn make_consistent(&self) -> io::Result<()> {
        // SAFETY: the caller holds the lock, obtained with EOWNERDEAD.
        check(
            unsafe { libc::pthread_mutex_consistent(self.mutex.get()) },
            "pthread_mutex_consistent",
        )
    }

    /// Repairs the data after a dead owner, with the lock held: an update it left half done
    /// (`dirty`) is finished. Returns whether there was one.
    pub fn repair(&self) -> bool {
        // SAFETY: the lock is held (the caller just got it with EOWNERDEAD).
        unsafe {
            let was_dirty = *self.dirty.get() != 0;
            if was_dirty {
                *self.counter.get() += 1;
                *self.dirty.get() = 0;
            }
            was_dirty
        }
    }

    /// `n` increments under the lock, each marked dirty while in progress; returns how many
    /// locks found a dead owner (each one repaired and made consistent).
    pub fn increment(&self, n: u64, guard: Duration) -> io::Result<u64> {
        let mut recovered = 0;
        for _ in 0..n {
            if self.lock(guard)? == Locked::OwnerDied {
                self.repair();
                self.make_consistent()?;
                recovered += 1;
            }
            // SAFETY: the lock is held.
            unsafe {
                *self.dirty.get() = 1;
                *self.counter.get() += 1;
                *self.dirty.get() = 0;
            }
            self.unlock()?;
        }
        Ok(recovered)
    }

    /// Starts an update and stops half way, holding the lock: what a process killed mid-update
    /// leaves behind. The counter is not yet incremented, `dirty` says so.
    pub fn start_update_and_hold(&self, guard: Duration) -> io::Result<()> {
        self.lock(guard)?;
        // SAFETY: the lock is held.
        unsafe { *self.dirty.get() = 1 };
        Ok(())
    }

    /// The counter (read under the lock).
    pub fn counter(&self, guard: Duration) -> io::Result<u64> {
        if self.lock(guard)? == Locked::OwnerDied {
            self.repair();
            self.make_consistent()?;
        }
        // SAFETY: the lock is held.
        let value = unsafe { *self.counter.get() };
        self.unlock()?;
        Ok(value)
    }
}

/// CLOCK_REALTIME now plus `after`, as `pthread_mutex_timedlock` wants it.
fn realtime_after(after: Duration) -> io::Result<libc::timespec> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
    let total = Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32) + after;
    Ok(libc::timespec {
        tv_sec: total.as_secs() as libc::time_t,
        tv_nsec: total.subsec_nanos() as libc::c_long,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_count_exactly_under_the_robust_mutex() {
        let mut slot = std::mem::MaybeUninit::<Guarded>::uninit();
        // SAFETY: `slot` is valid, aligned, unshared storage that does not move in this test.
        unsafe { Guarded::init(slot.as_mut_ptr()).unwrap() };
        // SAFETY: initialised just above.
        let g = unsafe { slot.assume_init_ref() };
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| g.increment(10_000, Duration::from_secs(10)).unwrap());
            }
        });
        assert_eq!(g.counter(Duration::from_secs(1)).unwrap(), 40_000);
    }
}
