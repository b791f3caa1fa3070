//! A single-producer single-consumer ring of fixed-size slots, laid out to live in shared memory
//! (`repr(C)`, no pointers, nothing that moves) and used alike by two threads or two processes.
//!
//! **A slot carries its own signal.** Each slot starts on a cache line with a 4-byte *stamp*,
//! the ring's own turn counter, and the message follows it:
//!
//! ```text
//!   line 0 of slot i: [stamp: u32][message bytes 0..60]
//!   line 1 ...      : [message bytes 60..124] ...        (a slot is whole cache lines)
//! ```
//!
//! * The producer at position `p` (its own counter) writes the message, then stores the stamp
//!   `p / slots + 1` (the lap, counted from 1; zero is "never written") with **Release**. The
//!   consumer at position `p` (its own counter) spins on that stamp with **Acquire** until it
//!   reads its lap: the message is there, and it is in the line just read.
//! * So a message of up to [`ONE_LINE`] bytes (60) travels with its "ready" in one cache-line
//!   transfer; a 64 B message spills 4 bytes into a second line (two transfers, or send 60).
//!   Only the producer writes a slot: neither side ever has to fetch back a line of the other's
//!   before it can write its own.
//! * The consumer hands slots back through its position, in a line of its own that only it
//!   writes (**Release**), half a ring at a time. The producer reads it
//!   (**Acquire**) only when its last reading says the ring is full: once per lap of a
//!   ping-pong, never in between. The producer's position is shared with no one.
//! * The stamp is not the message's sequence number: the messages carry their own (and a
//!   CRC), written from the producer's counter and checked by the consumer against its own, so
//!   a slot read twice or too early would still be caught.
//! * All zeros is an empty ring, so a fresh shared-memory object needs no initialisation;
//!   stamps and the shared position compare for equality or by wrapping difference, so they may
//!   wrap.
//! * A waiting consumer sleeps on the stamp it waits for, a waiting producer on the consumer's
//!   position (`wait.rs`); the `waiting` flags in the [`Header`] tell the other side to wake it.
//!
//! With `--cfg loom` the stamps and the slot cells come from loom, and the model below explores
//! every interleaving of a producer and a consumer; published with `Relaxed` instead of
//! `Release`, the stamp no longer orders the message's bytes, and loom reports the race.

#[cfg(loom)]
use loom::cell::UnsafeCell;
#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, Ordering};
use std::cell::Cell;
#[cfg(not(loom))]
use std::cell::UnsafeCell;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, Ordering};

/// A cache line (64 bytes on x86-64 and most ARM cores): a slot starts on one.
pub const LINE: usize = 64;

/// The stamp's bytes, at the start of each slot.
pub const STAMP: usize = 4;

/// The largest message that shares the first cache line with its stamp.
pub const ONE_LINE: usize = LINE - STAMP;

/// One cache line.
#[repr(C, align(64))]
pub struct Line<T>(pub T);

/// The ring's shared words besides the slots: the consumer's position, and whether a side
/// sleeps (see `wait.rs`).
#[repr(C)]
pub struct Header {
    /// The next position the consumer will read (wrapping): every slot before it is free.
    pub tail: Line<AtomicU32>,
    /// Set while the consumer is asleep, or about to be, on a slot's stamp.
    pub consumer_waiting: Line<AtomicU32>,
    /// Set while the producer is asleep, or about to be, on `tail`.
    pub producer_waiting: Line<AtomicU32>,
}

impl Header {
    /// All zeros: what a fresh shared-memory object holds too. (Not `const`: loom's atomics
    /// cannot be built in a constant.)
    pub fn new() -> Header {
        Header {
            tail: Line(AtomicU32::new(0)),
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

/// The bytes a slot for `message` bytes takes: its stamp and message, in whole cache lines.
pub const fn stride(message: usize) -> usize {
    (STAMP + message).div_ceil(LINE) * LINE
}

/// The cache lines a `message`-byte message and its stamp take.
pub const fn lines(message: usize) -> usize {
    stride(message) / LINE
}

/// The bytes `slots` slots for `message`-byte messages take.
pub const fn slots_bytes(slots: u64, message: usize) -> usize {
    slots as usize * stride(message)
}

/// Where a ring's slots are: raw memory (shared or not), or, in the loom model, stamps and
/// cells whose every access loom tracks.
enum Slots<'a> {
    Raw(*mut u8, std::marker::PhantomData<&'a mut [u8]>),
    #[cfg(loom)]
    Cells(&'a [AtomicU32], &'a [UnsafeCell<u8>]),
}

/// One side's view of a ring: its header and `slots` slots of `message`-byte messages. A view
/// serves one thread (it is not `Sync`); a ring has one producer view and one consumer view,
/// each made before the ring is first used (a view starts at position 0).
pub struct Ring<'a> {
    pub header: &'a Header,
    data: Slots<'a>,
    slots: u64,
    message: usize,
    /// Producer: the next position to fill.
    head: Cell<u64>,
    /// Producer: its last reading of the consumer's position (a lower bound of it).
    tail_seen: Cell<u32>,
    /// Consumer: the next position to read.
    tail: Cell<u64>,
    /// Consumer: the position it last stored for the producer to see.
    tail_shown: Cell<u64>,
    /// How a stamp is published: `Release` (the model shows what `Relaxed` would do).
    publish: Ordering,
}

// SAFETY: the protocol above gives each slot to exactly one side at a time (the producer from
// the consumer's position passing it until its store of the stamp, the consumer from reading
// that stamp until its store of the next position); the header is atomics only; a view moved to
// another thread takes its side with it.
unsafe impl Send for Ring<'_> {}

impl<'a> Ring<'a> {
    /// A view of the ring at `header`, whose slots are at `data`; `slots` is a power of two (a
    /// position becomes a slot with a mask, not a division).
    ///
    /// # Safety
    /// `data` must be valid for [`slots_bytes`]`(slots, message)` bytes for `'a`, aligned to a
    /// cache line, all zeros before the ring's first use, used by no other ring, and (between
    /// processes) mapped shared by both sides; at most one producer view and one consumer view
    /// in use, each by one thread.
    pub unsafe fn new(header: &'a Header, data: *mut u8, slots: u64, message: usize) -> Ring<'a> {
        assert_eq!(data as usize % LINE, 0, "slots start on cache lines");
        Ring::with_data(
            header,
            Slots::Raw(data, std::marker::PhantomData),
            slots,
            message,
        )
    }

    fn with_data(header: &'a Header, data: Slots<'a>, slots: u64, message: usize) -> Ring<'a> {
        assert!(
            slots.is_power_of_two() && slots < 1 << 31,
            "a ring's slot count is a power of two"
        );
        Ring {
            header,
            data,
            slots,
            message,
            head: Cell::new(0),
            tail_seen: Cell::new(0),
            tail: Cell::new(0),
            tail_shown: Cell::new(0),
            publish: Ordering::Release,
        }
    }

    /// The stamp that says position `p`'s message is in its slot: its lap, counted from 1.
    /// (A shift, not a division: this runs in every spin of a waiting consumer.)
    #[inline]
    fn stamp_for(&self, p: u64) -> u32 {
        ((p >> self.slots.trailing_zeros()) as u32).wrapping_add(1)
    }

    /// The stamp word of the slot of position `p`: what a waiting side watches and sleeps on.
    #[inline]
    pub fn stamp(&self, p: u64) -> &'a AtomicU32 {
        let at = (p & (self.slots - 1)) as usize;
        match &self.data {
            Slots::Raw(base, _) => {
                // SAFETY: `at < slots`, so the slot lies inside the region `new` was given; its
                // first 4 bytes, on a cache line (so aligned for a u32), are only ever accessed
                // as this atomic.
                unsafe { &*base.add(at * stride(self.message)).cast::<AtomicU32>() }
            }
            #[cfg(loom)]
            Slots::Cells(stamps, _) => {
                let stamps: &'a [AtomicU32] = stamps;
                &stamps[at]
            }
        }
    }

    /// The stamp words of all the slots: what a sleeping consumer may be sleeping on.
    pub fn stamps(&self) -> impl Iterator<Item = &'a AtomicU32> + '_ {
        (0..self.slots).map(|p| self.stamp(p))
    }

    /// Runs `f` on the message of position `p`'s slot, which the caller owns under the protocol.
    fn with_message<T>(&self, p: u64, f: impl FnOnce(&mut [u8]) -> T) -> T {
        let at = (p & (self.slots - 1)) as usize;
        match &self.data {
            Slots::Raw(base, _) => {
                // SAFETY: the message lies after the stamp, inside the slot (`stride` covers
                // both); the protocol gives the slot to one side at a time.
                f(unsafe {
                    let start = base.add(at * stride(self.message) + STAMP);
                    std::slice::from_raw_parts_mut(start, self.message)
                })
            }
            #[cfg(loom)]
            // SAFETY: loom checks that no other access to this cell races with this one.
            Slots::Cells(_, cells) => {
                cells[at].with_mut(|p| f(std::slice::from_mut(unsafe { &mut *p })))
            }
        }
    }

    /// Producer: whether the next slot is free. By its last reading of the consumer's position
    /// if that says so (the position only grows); else by a fresh one, Acquire: the consumer's
    /// reading of the slot is over before we overwrite it.
    #[inline]
    pub fn has_space(&self) -> bool {
        let head = self.head.get() as u32;
        if head.wrapping_sub(self.tail_seen.get()) < self.slots as u32 {
            return true;
        }
        let tail = self.header.tail.0.load(Ordering::Acquire);
        self.tail_seen.set(tail);
        head.wrapping_sub(tail) < self.slots as u32
    }

    /// Consumer: the stamp word of the next slot to read, and whether its message is there.
    #[inline]
    pub fn item(&self) -> (&'a AtomicU32, bool) {
        let tail = self.tail.get();
        let stamp = self.stamp(tail);
        // Acquire: pairs with the producer's Release store; the message's bytes are visible.
        (stamp, stamp.load(Ordering::Acquire) == self.stamp_for(tail))
    }

    /// Producer: if the next slot is free, fills it with `fill` and publishes it; returns the
    /// stamp it stored to (a sleeping consumer waits on it), or `None` if the ring is full.
    pub fn try_push(&self, fill: impl FnOnce(&mut [u8])) -> Option<&'a AtomicU32> {
        if !self.has_space() {
            return None;
        }
        let head = self.head.get();
        self.with_message(head, fill);
        let stamp = self.stamp(head);
        stamp.store(self.stamp_for(head), self.publish);
        self.head.set(head + 1);
        Some(stamp)
    }

    /// Consumer: if the next slot holds a message, hands it to `read` and frees the slot. The
    /// slots read are handed back to the producer in batches of half the ring (call
    /// [`show_tail`] after each), so the line holding the position moves once per batch in a
    /// stream, not once per message.
    ///
    /// [`show_tail`]: Ring::show_tail
    pub fn try_pop<T>(&self, read: impl FnOnce(&[u8]) -> T) -> Option<T> {
        if !self.item().1 {
            return None;
        }
        let tail = self.tail.get();
        let out = self.with_message(tail, |m| read(m));
        self.tail.set(tail + 1);
        Some(out)
    }

    /// Consumer: stores its position for the producer (Release: our reading of the slots
    /// before it is over) once half a ring is read since it last did; returns whether it
    /// stored (a sleeping producer waits on that word). Never more than half a ring goes
    /// unshown, so a producer that finds the ring full always has a consumer with messages to
    /// read ahead of it, which will show more: neither side can wait on the other for good.
    #[inline]
    pub fn show_tail(&self) -> bool {
        let tail = self.tail.get();
        if tail - self.tail_shown.get() < (self.slots / 2).max(1) {
            return false;
        }
        self.header.tail.0.store(tail as u32, Ordering::Release);
        self.tail_shown.set(tail);
        true
    }
}

/// Storage for a ring in ordinary memory (threads; and the loom model).
pub struct Local {
    pub header: Header,
    #[cfg(not(loom))]
    lines: Vec<UnsafeCell<Line<[u8; LINE]>>>,
    #[cfg(loom)]
    stamps: Vec<AtomicU32>,
    #[cfg(loom)]
    cells: Vec<UnsafeCell<u8>>,
    slots: u64,
    message: usize,
}

// SAFETY: the memory is handed out only through `Ring`, whose protocol serialises each slot.
unsafe impl Sync for Local {}

impl Local {
    /// A zeroed ring of `slots` slots for `message`-byte messages, its slots on cache lines as
    /// in the shared mapping, so that the threads' ring and the processes' ring are alike.
    pub fn new(slots: u64, message: usize) -> Local {
        Local {
            header: Header::new(),
            #[cfg(not(loom))]
            lines: (0..slots_bytes(slots, message) / LINE)
                .map(|_| UnsafeCell::new(Line([0; LINE])))
                .collect(),
            #[cfg(loom)]
            stamps: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            #[cfg(loom)]
            cells: (0..slots).map(|_| UnsafeCell::new(0)).collect(),
            slots,
            message,
        }
    }

    /// A view of the ring over this storage, for one side.
    pub fn ring(&self) -> Ring<'_> {
        #[cfg(not(loom))]
        {
            let base = self.lines.as_ptr() as *mut u8;
            // SAFETY: `lines` holds `slots_bytes(slots, message)` zeroed, line-aligned bytes
            // (`UnsafeCell` is `repr(transparent)`), which live as long as the ring and serve
            // it alone.
            unsafe { Ring::new(&self.header, base, self.slots, self.message) }
        }
        #[cfg(loom)]
        {
            assert_eq!(
                self.message, 1,
                "the model uses one-byte messages, one cell each"
            );
            let data = Slots::Cells(&self.stamps, &self.cells);
            Ring::with_data(&self.header, data, self.slots, 1)
        }
    }

    /// A view whose stamps are published with `order` instead of `Release`: for the model's
    /// proof that the ordering matters.
    #[cfg(loom)]
    pub fn ring_publishing(&self, order: Ordering) -> Ring<'_> {
        let mut ring = self.ring();
        ring.publish = order;
        ring
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_sixty_bytes_shares_its_stamps_line() {
        assert_eq!((stride(60), lines(60)), (64, 1));
        assert_eq!((stride(64), lines(64)), (128, 2));
        assert_eq!(lines(4096), 65);
        let local = Local::new(8, 60);
        let ring = local.ring();
        for _ in 0..8 {
            assert!(
                ring.try_push(|m| assert_eq!(m.as_ptr() as usize % LINE, STAMP))
                    .is_some()
            );
            ring.try_pop(|_| ()).unwrap();
        }
    }

    #[test]
    fn a_full_ring_refuses_and_an_empty_one_has_nothing() {
        let local = Local::new(4, 8);
        let ring = local.ring();
        assert!(ring.try_pop(|_| ()).is_none());
        for _ in 0..4 {
            assert!(ring.try_push(|_| ()).is_some());
        }
        assert!(ring.try_push(|_| ()).is_none());
        ring.try_pop(|_| ()).unwrap();
        assert!(!ring.show_tail(), "one slot of four is not half a ring");
        assert!(
            ring.try_push(|_| ()).is_none(),
            "a slot read but not shown is not free yet"
        );
        ring.try_pop(|_| ()).unwrap();
        assert!(ring.show_tail());
        assert!(ring.try_push(|_| ()).is_some(), "a slot shown free is free");
    }

    #[test]
    fn items_cross_in_order_between_threads() {
        let local = Local::new(4, 8);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ring = local.ring();
                for i in 0..10_000u64 {
                    while ring
                        .try_push(|m| m.copy_from_slice(&i.to_le_bytes()))
                        .is_none()
                    {
                        std::hint::spin_loop();
                    }
                }
            });
            let ring = local.ring();
            let mut next = 0u64;
            while next < 10_000 {
                match ring.try_pop(|m| u64::from_le_bytes(m.try_into().unwrap())) {
                    Some(v) => {
                        assert_eq!(v, next);
                        next += 1;
                        ring.show_tail();
                    }
                    None => {
                        ring.show_tail();
                    }
                }
            }
        });
    }
}

#[cfg(all(test, loom))]
mod model {
    use super::*;

    /// Three one-byte messages through a two-slot ring, the producer's stamps published with
    /// `order`; every interleaving must deliver them once, in order, with their bytes.
    fn three_through_two(order: Ordering) {
        loom::model(move || {
            let local = loom::sync::Arc::new(Local::new(2, 1));
            let producer = {
                let local = local.clone();
                loom::thread::spawn(move || {
                    let ring = local.ring_publishing(order); // One view per side.
                    for v in 1..=3u8 {
                        while ring.try_push(|m| m[0] = v).is_none() {
                            loom::thread::yield_now();
                        }
                    }
                })
            };
            let mut got = Vec::new();
            let ring = local.ring();
            while got.len() < 3 {
                match ring.try_pop(|m| m[0]) {
                    Some(v) => {
                        got.push(v);
                        ring.show_tail();
                    }
                    None => {
                        ring.show_tail();
                        loom::thread::yield_now();
                    }
                }
            }
            producer.join().unwrap();
            assert_eq!(got, [1, 2, 3]);
        });
    }

    /// Every interleaving of one producer and one consumer on the real `try_push`/`try_pop`: a
    /// data race on a slot (a wrong ordering) would be reported by loom.
    #[test]
    fn spsc_protocol() {
        three_through_two(Ordering::Release);
    }

    /// The same with the stamp published `Relaxed`: the message's bytes are no longer ordered
    /// before the stamp that says they are there, and loom finds the race.
    #[test]
    #[should_panic(expected = "Causality violation")]
    fn a_relaxed_stamp_races_with_the_message() {
        three_through_two(Ordering::Relaxed);
    }
}
