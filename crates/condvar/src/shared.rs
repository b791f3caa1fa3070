//! Memory shared between processes without any name: a `memfd_create` file, mapped
//! `MAP_SHARED` by each side. The creator passes the descriptor to its child (see
//! `labkit::child::Peer::start`); nothing is left in `/dev/shm` or anywhere else, whatever
//! happens to either side.
//!
//! The file starts zero-filled. Whatever lives in it (a counter, a process-shared
//! `pthread_mutex_t`) must be initialised in place by one side before the other uses it, and
//! must never move: hand out pointers into the mapping, never copies.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use memmap2::MmapRaw;

/// A shared, zero-initialised mapping backed by an anonymous memory file.
pub struct SharedMemory {
    fd: OwnedFd,
    map: MmapRaw,
}

impl SharedMemory {
    /// A new memory file of `len` bytes (rounded up by the kernel to whole pages), mapped here.
    pub fn create(len: usize) -> Result<SharedMemory> {
        // SAFETY: the name is a valid NUL-terminated string; the flags are valid.
        let fd = unsafe { libc::memfd_create(c"labkit-shared".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("memfd_create");
        }
        // SAFETY: memfd_create just returned this descriptor, and nothing else owns it.
        let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        // posix_fallocate, not ftruncate: the pages are taken now, so memory that cannot be had
        // fails here (ENOSPC) rather than as SIGBUS at the first touch.
        nix::fcntl::posix_fallocate(&file, 0, len as i64)
            .context("posix_fallocate the memory file")?;
        Self::open(OwnedFd::from(file))
    }

    /// Maps a memory file received from the other side.
    pub fn open(fd: OwnedFd) -> Result<SharedMemory> {
        let map = MmapRaw::map_raw(fd.as_raw_fd()).context("mmap(MAP_SHARED) the memory file")?;
        Ok(SharedMemory { fd, map })
    }

    /// The descriptor to pass to a child.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The mapping's start as a `*mut T`, checked for size and alignment.
    pub fn cast<T>(&self) -> *mut T {
        assert!(
            std::mem::size_of::<T>() <= self.len(),
            "the mapping is smaller than the type"
        );
        assert!(
            self.as_ptr().align_offset(std::mem::align_of::<T>()) == 0,
            "misaligned"
        );
        self.as_ptr().cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn two_mappings_of_one_file_see_each_other() {
        let a = SharedMemory::create(4096).unwrap();
        let b = SharedMemory::open(a.fd().try_clone_to_owned().unwrap()).unwrap();
        // SAFETY: both mappings are at least 8 bytes, page-aligned, and used only atomically.
        let (wa, wb) = unsafe { (&*a.cast::<AtomicU64>(), &*b.cast::<AtomicU64>()) };
        assert_eq!(wb.load(Ordering::SeqCst), 0, "zero-initialised");
        wa.store(42, Ordering::SeqCst);
        assert_eq!(wb.load(Ordering::SeqCst), 42);
        assert!(a.len() >= 4096);
    }
}
