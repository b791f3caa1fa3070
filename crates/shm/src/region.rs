//! The shared region between the two processes: a POSIX shared-memory object (`shm_open`
//! O_EXCL 0600, its name unlinked at once, its descriptor inherited by the child), mapped
//! `MAP_SHARED` by both, holding two rings: one to the child, one back.

use std::os::fd::OwnedFd;

use anyhow::{Context, Result};
use labkit::names::{Kind, reserve};
use labkit::report::format_bytes;
use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use shm::ring::{Header, LINE, ONE_LINE, Ring, STAMP, lines, slots_bytes};

/// A POSIX shared-memory object of `len` bytes, created O_EXCL 0600 and unlinked at once: its
/// descriptor is all anyone needs (a child inherits it).
pub fn shm_object(len: u64) -> Result<OwnedFd> {
    // The name comes from labkit's ledger, written before the object exists, so that a creator
    // that dies between `shm_open` and `shm_unlink` leaves something `cargo xtask clean` finds.
    let mut r = reserve(Kind::Shm)?;
    let fd = nix::sys::mman::shm_open(
        r.name(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .with_context(|| format!("shm_open({}, O_CREAT|O_EXCL, 0600)", r.name()))?;
    r.mark_created();
    r.unlink().context("shm_unlink")?;
    // A new object is empty; posix_fallocate gives it its size, zero-filled, and takes the
    // pages now: on a full /dev/shm it fails here with ENOSPC (ftruncate would succeed, and the
    // first touch of a page that cannot be had would kill us with SIGBUS).
    nix::fcntl::posix_fallocate(&fd, 0, len as i64).with_context(|| {
        format!(
            "posix_fallocate {} for the shared-memory object",
            format_bytes(len)
        )
    })?;
    Ok(fd)
}

/// Slots per ring for `bytes`-byte messages: 8 KiB of slots, at least 8 and at most 64. Small
/// messages get many: measured here with the vCPUs far apart, a 60 B ping-pong took 490-500 ns
/// through rings of 8 or 16 slots and 400-420 ns through 64 (the consumer hands slots back half
/// a ring at a time, and each hand-back moves a line the next message must wait behind).
pub fn slots(bytes: u64) -> u64 {
    let fit = (8 << 10) / shm::ring::stride(bytes as usize) as u64;
    1 << fit.clamp(8, 64).ilog2()
}

/// The layout of a shared region: two headers (to the child, back), then the two rings' slots
/// (each a stamp and a message, in whole cache lines).
pub fn len(bytes: u64) -> usize {
    2 * std::mem::size_of::<Header>() + 2 * slots_bytes(slots(bytes), bytes as usize)
}

/// Maps the region of `bytes`-byte messages held by the object `fd` (`MAP_SHARED`).
pub fn map(fd: &OwnedFd, bytes: u64) -> Result<MmapRaw> {
    MmapOptions::new()
        .len(len(bytes))
        .map_raw(fd)
        .with_context(|| {
            format!(
                "mmap the shared-memory object ({})",
                format_bytes(len(bytes) as u64)
            )
        })
}

/// The two rings in a mapped region: (to the child, back).
///
/// # Safety
/// `map` must be `len(bytes)` bytes, shared with at most one other process that uses the
/// rings the other way round. (The rings borrow `map`, so they cannot outlive it.)
pub unsafe fn rings(map: &MmapRaw, bytes: u64) -> (Ring<'_>, Ring<'_>) {
    let base = map.as_mut_ptr();
    let h = std::mem::size_of::<Header>();
    let n = slots(bytes);
    let area = slots_bytes(n, bytes as usize);
    // SAFETY: by the caller's contract; the headers are page-aligned (offset 0) or aligned to
    // their 64-byte lines (offset `h`, a multiple of 64), zero-filled by posix_fallocate (a valid
    // all-zero `Header`, and all-zero slots: an empty ring), and the slot areas follow them on
    // cache lines (whole lines each) without overlap.
    unsafe {
        let to_child = &*base.cast::<Header>();
        let back = &*base.add(h).cast::<Header>();
        (
            Ring::new(to_child, base.add(2 * h), n, bytes as usize),
            Ring::new(back, base.add(2 * h + area), n, bytes as usize),
        )
    }
}

/// Says in `report` how a ring's slot is laid out, how many cache lines a message of each of
/// `sizes` takes with its stamp, and how many slots its rings have.
pub fn note_layout(report: &mut labkit::Report, sizes: &[u64]) {
    let per_size: serde_json::Map<String, serde_json::Value> = (sizes.iter())
        .map(|&b| (b.to_string(), lines(b as usize).into()))
        .collect();
    report.param("slot_lines", per_size);
    let per_size: serde_json::Map<String, serde_json::Value> = (sizes.iter())
        .map(|&b| (b.to_string(), slots(b).into()))
        .collect();
    report.param("slots", per_size);
    report.param(
        "slot_layout",
        format!(
            "a {STAMP} B stamp, then the message, in whole {LINE} B cache lines: up to \
             {ONE_LINE} B travels in one line with its stamp"
        ),
    );
}
