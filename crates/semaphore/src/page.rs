//! The page the processes share (a `memfd`, mapped by the parent and by every child): the
//! unnamed process-shared semaphores and the ring, laid out once (`repr(C)`), initialised in
//! place by the parent before any child starts, never moved, and never `sem_destroy`ed (a peer
//! may have died mid-wait): the page is just unmapped.

use std::cell::UnsafeCell;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicU64;

use crate::shared::SharedMemory;
use anyhow::{Context, Result};

use crate::ring::{Ring, SLOTS};
use crate::sem::PosixSem;

/// What lives in the shared page: the unnamed semaphores and the ring. The semaphores are
/// `UnsafeCell`s: `sem_post`/`sem_wait`, here and in other processes, write their bytes while a
/// `&Shared` exists.
#[repr(C)]
struct Shared {
    empty: UnsafeCell<libc::sem_t>,
    full: UnsafeCell<libc::sem_t>,
    lock: UnsafeCell<libc::sem_t>,
    ping: UnsafeCell<libc::sem_t>,
    pong: UnsafeCell<libc::sem_t>,
    stop: AtomicU64,
    ring: Ring,
}

/// The unnamed semaphores of the shared page, as this process sees them.
pub struct Unnamed {
    pub empty: PosixSem,
    pub full: PosixSem,
    pub lock: PosixSem,
    pub ping: PosixSem,
    pub pong: PosixSem,
}

/// The shared page, mapped. (Fields drop in order: the handles go before the mapping.)
pub struct Page {
    pub sems: Unnamed,
    shared: *const Shared,
    memory: SharedMemory,
}

impl Page {
    /// A fresh page, its semaphores initialised in place: `empty` = [`SLOTS`], `full` = 0,
    /// `lock` = 1, `ping` and `pong` = 0.
    pub fn create() -> Result<Page> {
        let memory =
            SharedMemory::create(std::mem::size_of::<Shared>()).context("shared memory")?;
        let shared: *mut Shared = memory.cast();
        // SAFETY: the mapping is fresh, zero-filled (a valid `Ring` and `stop`), large enough and
        // aligned (checked by `cast`), and unshared until the children start; the semaphores are
        // initialised in place and never moved.
        let sems = unsafe {
            PosixSem::init_shared((*shared).empty.get(), SLOTS as u32)?;
            PosixSem::init_shared((*shared).full.get(), 0)?;
            PosixSem::init_shared((*shared).lock.get(), 1)?;
            PosixSem::init_shared((*shared).ping.get(), 0)?;
            PosixSem::init_shared((*shared).pong.get(), 0)?;
            attach(shared)
        };
        Ok(Page {
            sems,
            shared,
            memory,
        })
    }

    /// In a child: the page the parent created, from the descriptor it passed.
    pub fn open(fd: OwnedFd) -> Result<Page> {
        let memory = SharedMemory::open(fd)?;
        let shared: *mut Shared = memory.cast();
        // SAFETY: the parent initialised the `Shared` in this mapping before starting us and
        // keeps it mapped; only semaphores and atomics are used through it.
        let sems = unsafe { attach(shared) };
        Ok(Page {
            sems,
            shared,
            memory,
        })
    }

    /// The page's descriptor, for a child to inherit.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.memory.fd()
    }

    fn shared(&self) -> &Shared {
        // SAFETY: `shared` points into `memory`, initialised (by `create`, or by the parent
        // before `open`), mapped as long as `self` lives; only atomics and semaphores (through
        // `UnsafeCell`) are used through it.
        unsafe { &*self.shared }
    }

    /// The ring of the bounded buffer.
    pub fn ring(&self) -> &Ring {
        &self.shared().ring
    }

    /// Set to 1 to stop the pong process (it reads it after each ping).
    pub fn stop(&self) -> &AtomicU64 {
        &self.shared().stop
    }
}

/// # Safety
/// `shared` must point to a `Shared` whose semaphores were initialised (see [`Page::create`]),
/// mapped for as long as the result is used.
unsafe fn attach(shared: *mut Shared) -> Unnamed {
    // SAFETY: by the caller's contract; `UnsafeCell::get` takes the fields' addresses without
    // creating references to memory other processes change.
    unsafe {
        Unnamed {
            empty: PosixSem::attach((*shared).empty.get()),
            full: PosixSem::attach((*shared).full.get()),
            lock: PosixSem::attach((*shared).lock.get()),
            ping: PosixSem::attach((*shared).ping.get()),
            pong: PosixSem::attach((*shared).pong.get()),
        }
    }
}
