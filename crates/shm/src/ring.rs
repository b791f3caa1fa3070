//! A single-producer single-consumer ring of fixed-size slots, laid out to live in shared memory
//! (`repr(C)`, no pointers, nothing that moves) and used alike by two threads or two processes.
//!
//! * `head` (the next slot to fill) is written only by the producer, `tail` (the next slot to
//!   read) only by the consumer; each sits on its own cache line, so the two sides do not
//!   invalidate each other's line on every step.
//! * Publication: the producer writes the slot, then stores `head + 1` with **Release**; the
//!   consumer loads `head` with **Acquire** before reading the slot, so the slot's bytes are
//!   visible to it. Symmetrically for `tail`, which frees a slot for the producer.
//! * `seq` words, bumped after each publication, are what a waiting side sleeps on (a futex,
//!   see `wait.rs`); `waiting` flags tell the other side whether to wake it.
//! * Each side works through its own view ([`Ring`]), which remembers its own index and its last
//!   reading of the other's: a side reads the other's line only when the ring looks full (or
//!   empty) by that reading, and never reads its own index back from the shared line (the other
//!   side's spinning reads of it can cost a transfer there too).
//!
//! With `--cfg loom` the atomics and the slot cells come from loom, and the test below explores
//! every interleaving of a producer and a consumer.

#[cfg(loom)]
use loom::cell::UnsafeCell;
#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::cell::Cell;
#[cfg(not(loom))]
use std::cell::UnsafeCell;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// One cache line (64 bytes on x86-64 and most ARM cores).
#[repr(C, align(64))]
pub struct Line<T>(pub T);

/// The ring's control words.
#[repr(C)]
pub struct Header {
    /// Slots published by the producer (monotonic).
    pub head: Line<AtomicU64>,
    /// Slots consumed by the consumer (monotonic).
    pub tail: Line<AtomicU64>,
    /// Bumped after every publication of `head`: the consumer sleeps on it.
    pub head_seq: Line<AtomicU32>,
    /// Bumped after every advance of `tail`: the producer sleeps on it.
    pub tail_seq: Line<AtomicU32>,
    /// Set while the consumer (resp. producer) is asleep or about to be.
    pub consumer_waiting: Line<AtomicU32>,
    pub producer_waiting: Line<AtomicU32>,
}

impl Header {
    /// All zeros: what a fresh shared-memory object holds too. (Not `const`: loom's atomics
    /// cannot be built in a constant.)
    pub fn new() -> Header {
        Header {
            head: Line(AtomicU64::new(0)),
            tail: Line(AtomicU64::new(0)),
            head_seq: Line(AtomicU32::new(0)),
            tail_seq: Line(AtomicU32::new(0)),
            consumer_waiting: Line(AtomicU32::new(0)),
            producer_waiting: Line(AtomicU32::new(0)),
        }
    }
}

impl Default for Header {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a ring's slots are: raw memory (shared or not), or, in the loom model, cells whose
/// every access loom tracks.
enum Slots<'a> {
    Raw(*mut u8, std::marker::PhantomData<&'a mut [u8]>),
    #[cfg(loom)]
    Cells(&'a [UnsafeCell<u8>]),
}

/// One side's view of a ring: its header and `slots` slots of `slot_bytes` bytes. A view serves
/// one thread (it is not `Sync`); a ring has one producer view and one consumer view.
pub struct Ring<'a> {
    pub header: &'a Header,
    data: Slots<'a>,
    slots: u64,
    slot_bytes: usize,
    /// Producer: `head` as it last stored it (only it stores `head`, so this is exact).
    head_mine: Cell<u64>,
    /// Producer: its last reading of `tail`, a lower bound of it: `tail` is read again (a
    /// cache-line transfer from the consumer) only when the ring looks full by this one.
    tail_seen: Cell<u64>,
    /// Consumer: `tail` as it last stored it.
    tail_mine: Cell<u64>,
    /// Consumer: its last reading of `head`: read again only when the ring looks empty.
    head_seen: Cell<u64>,
}

// SAFETY: the protocol above gives each slot to exactly one side at a time (the producer between
// `tail` passing it and its own `head` store, the consumer between `head` passing it and its own
// `tail` store); the header is atomics only; a view moved to another thread takes its side with
// it.
unsafe impl Send for Ring<'_> {}

impl<'a> Ring<'a> {
    /// A view of the ring at `header`, whose slots are at `data`; `slots` is a power of two (an
    /// index becomes a slot with a mask, not a division).
    ///
    /// # Safety
    /// `data` must be valid for `slots * slot_bytes` bytes for `'a`, used by no other ring, and
    /// (between processes) mapped shared by both sides; at most one producer view and one
    /// consumer view in use, each by one thread.
    pub unsafe fn new(
        header: &'a Header,
        data: *mut u8,
        slots: u64,
        slot_bytes: usize,
    ) -> Ring<'a> {
        Ring::with_data(
            header,
            Slots::Raw(data, std::marker::PhantomData),
            slots,
            slot_bytes,
        )
    }

    fn with_data(header: &'a Header, data: Slots<'a>, slots: u64, slot_bytes: usize) -> Ring<'a> {
        assert!(
            slots.is_power_of_two(),
            "a ring's slot count is a power of two"
        );
        let (head, tail) = (
            header.head.0.load(Ordering::Acquire),
            header.tail.0.load(Ordering::Acquire),
        );
        Ring {
            header,
            data,
            slots,
            slot_bytes,
            head_mine: Cell::new(head),
            tail_seen: Cell::new(tail),
            tail_mine: Cell::new(tail),
            head_seen: Cell::new(head),
        }
    }

    /// The slot size.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Runs `f` on slot `index`, which the caller owns under the protocol.
    fn with_slot<T>(&self, index: u64, f: impl FnOnce(&mut [u8]) -> T) -> T {
        let at = (index & (self.slots - 1)) as usize;
        match &self.data {
            Slots::Raw(base, _) => {
                // SAFETY: `at < slots`, so the slot lies inside the region `new` was given, and
                // the protocol (see `try_push`/`try_pop`) gives it to one side at a time.
                f(unsafe {
                    std::slice::from_raw_parts_mut(base.add(at * self.slot_bytes), self.slot_bytes)
                })
            }
            #[cfg(loom)]
            // SAFETY: loom checks that no other access to this cell races with this one.
            Slots::Cells(cells) => {
                cells[at].with_mut(|p| f(std::slice::from_mut(unsafe { &mut *p })))
            }
        }
    }

    /// Whether a slot is free (producer side). A stale `tail_seen` only underestimates the
    /// free slots (`tail` only grows), and it was loaded with Acquire, so a slot it frees is
    /// one the consumer has finished with.
    pub fn has_space(&self) -> bool {
        let head = self.head_mine.get();
        if head - self.tail_seen.get() < self.slots {
            return true;
        }
        let tail = self.header.tail.0.load(Ordering::Acquire); // The consumer is done with it.
        self.tail_seen.set(tail);
        head - tail < self.slots
    }

    /// Whether a slot is published (consumer side); `head_seen` as `tail_seen` above.
    pub fn has_item(&self) -> bool {
        let tail = self.tail_mine.get();
        if tail < self.head_seen.get() {
            return true;
        }
        // While the ring looks empty, keep the next slot's first line on its way to this core:
        // the producer's write invalidates it, the next look fetches it again, alongside `head`
        // (two transfers in parallel instead of one after the other). Only a hint: the slot is
        // read for real after the Acquire load below says it is published.
        self.prefetch_slot(tail);
        let head = self.header.head.0.load(Ordering::Acquire); // Pairs with the producer's Release.
        self.head_seen.set(head);
        tail < head
    }

    /// A prefetch hint for slot `index`'s first cache line; no effect on what is read.
    fn prefetch_slot(&self, index: u64) {
        #[cfg(target_arch = "x86_64")]
        #[allow(irrefutable_let_patterns)] // Without loom, raw memory is the only kind.
        if let Slots::Raw(base, _) = &self.data {
            let at = (index & (self.slots - 1)) as usize * self.slot_bytes;
            // SAFETY: a prefetch is a hint: it reads nothing into the program and cannot fault,
            // whatever the address (`wrapping_add` makes none of the pointer's validity matter).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    base.wrapping_add(at).cast::<i8>(),
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = index;
    }

    /// Producer: if a slot is free, fills it with `fill` and publishes it. Returns whether it did.
    pub fn try_push(&self, fill: impl FnOnce(&mut [u8])) -> bool {
        if !self.has_space() {
            return false;
        }
        let head = self.head_mine.get();
        // Slot `head` is ours: the consumer has released it (`tail` passed it) and will not read
        // it before our Release store of `head + 1` below.
        self.with_slot(head, fill);
        self.header.head.0.store(head + 1, Ordering::Release);
        self.head_mine.set(head + 1);
        self.header.head_seq.0.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Consumer: if a slot is published, hands it to `read` and frees it. Returns whether it did.
    pub fn try_pop<T>(&self, read: impl FnOnce(&[u8]) -> T) -> Option<T> {
        if !self.has_item() {
            return None;
        }
        let tail = self.tail_mine.get();
        // Slot `tail` is published (Release/Acquire on `head` made its bytes visible) and the
        // producer will not touch it before our store of `tail + 1`.
        let out = self.with_slot(tail, |slot| read(slot));
        self.header.tail.0.store(tail + 1, Ordering::Release);
        self.tail_mine.set(tail + 1);
        self.header.tail_seq.0.fetch_add(1, Ordering::SeqCst);
        Some(out)
    }
}

/// Storage for a ring in ordinary memory (threads; and the loom model).
pub struct Local {
    pub header: Header,
    cells: Vec<UnsafeCell<u8>>,
    slots: u64,
    slot_bytes: usize,
}

// SAFETY: the cells are handed out only through `Ring`, whose protocol serialises each slot.
unsafe impl Sync for Local {}

/// Where a [`Local`] ring's slots start: on a cache line, as in the shared mapping, so that the
/// threads' ring and the processes' ring are alike (a 64 B slot fills one line, not parts of two).
#[cfg(not(loom))]
const SLOT_ALIGN: usize = 64;

impl Local {
    pub fn new(slots: u64, slot_bytes: usize) -> Local {
        // Room to start the slots on a line boundary (the model's one-byte cells need none).
        let padding = if cfg!(loom) { 0 } else { 63 };
        let cells = (0..slots as usize * slot_bytes + padding)
            .map(|_| UnsafeCell::new(0))
            .collect();
        Local {
            header: Header::new(),
            cells,
            slots,
            slot_bytes,
        }
    }

    /// A view of the ring over this storage, for one side.
    pub fn ring(&self) -> Ring<'_> {
        #[cfg(not(loom))]
        {
            let base = self.cells.as_ptr() as *mut u8;
            let skip = base.align_offset(SLOT_ALIGN);
            assert!(skip < SLOT_ALIGN, "a byte pointer can always be aligned");
            // SAFETY: `cells` holds `slots * slot_bytes + 63` contiguous bytes (`UnsafeCell<u8>`
            // is `repr(transparent)`), so `slots * slot_bytes` of them remain after the `skip`
            // (< 64) bytes to the line boundary; they live as long as the ring and serve it
            // alone.
            unsafe { Ring::new(&self.header, base.add(skip), self.slots, self.slot_bytes) }
        }
        #[cfg(loom)]
        {
            assert_eq!(
                self.slot_bytes, 1,
                "the model uses one-byte slots, one cell each"
            );
            Ring::with_data(&self.header, Slots::Cells(&self.cells), self.slots, 1)
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn local_slots_start_on_cache_lines_as_in_the_mapping() {
        for _ in 0..8 {
            let local = Local::new(8, 64);
            let ring = local.ring();
            for _ in 0..8 {
                assert!(ring.try_push(|slot| assert_eq!(slot.as_ptr() as usize % 64, 0)));
                ring.try_pop(|_| ()).unwrap();
            }
        }
    }

    #[test]
    fn items_cross_in_order_between_threads() {
        let local = Local::new(4, 8);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ring = local.ring();
                for i in 0..10_000u64 {
                    while !ring.try_push(|slot| slot.copy_from_slice(&i.to_le_bytes())) {
                        std::hint::spin_loop();
                    }
                }
            });
            let ring = local.ring();
            let mut next = 0u64;
            while next < 10_000 {
                if let Some(v) = ring.try_pop(|slot| u64::from_le_bytes(slot.try_into().unwrap())) {
                    assert_eq!(v, next);
                    next += 1;
                }
            }
        });
    }
}

#[cfg(all(test, loom))]
mod model {
    use super::*;

    /// Every interleaving of one producer and one consumer on the real `try_push`/`try_pop`:
    /// three items through a two-slot ring arrive once, in order, with their bytes; a data race
    /// on a slot (a wrong ordering) would be reported by loom.
    #[test]
    fn spsc_protocol() {
        loom::model(|| {
            let local = loom::sync::Arc::new(Local::new(2, 1));
            let producer = {
                let local = local.clone();
                loom::thread::spawn(move || {
                    let ring = local.ring(); // One view per side: its cached index persists.
                    for v in 1..=3u8 {
                        while !ring.try_push(|slot| slot[0] = v) {
                            loom::thread::yield_now();
                        }
                    }
                })
            };
            let mut got = Vec::new();
            let ring = local.ring();
            while got.len() < 3 {
                match ring.try_pop(|slot| slot[0]) {
                    Some(v) => got.push(v),
                    None => loom::thread::yield_now(),
                }
            }
            producer.join().unwrap();
            assert_eq!(got, [1, 2, 3]);
        });
    }
}
