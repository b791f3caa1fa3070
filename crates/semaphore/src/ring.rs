//! A bounded buffer (the producer/consumer problem) built from three counting semaphores:
//! `empty` counts free slots, `full` counts items waiting, `lock` (a binary semaphore) lets one
//! producer at a time claim a slot. Items are `(producer, sequence)` pairs, so the consumer can
//! check that each arrives once and, per producer, in order.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sem::{CondvarSem, Semaphore};

/// Slots in the ring.
pub const SLOTS: usize = 64;

/// The consumer asks whether its producers are alive at least this often (in items).
pub const CHECK_EVERY: u64 = 4096;

/// The ring's memory, `repr(C)` so that processes mapping it agree on the layout.
#[repr(C)]
pub struct Ring {
    put: AtomicU64,
    get: AtomicU64,
    slots: [AtomicU64; SLOTS],
}

impl Ring {
    pub fn new() -> Ring {
        Ring {
            put: AtomicU64::new(0),
            get: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Default for Ring {
    fn default() -> Self {
        Self::new()
    }
}

/// One item: the producer's number in the top 16 bits, its sequence number below.
pub fn item(producer: u64, seq: u64) -> u64 {
    producer << 48 | seq
}

/// A bounded buffer between threads: `Condvar` semaphores (`empty` = [`SLOTS`], `full` = 0,
/// `lock` = 1) and a ring, owned together.
pub struct Local {
    empty: CondvarSem,
    full: CondvarSem,
    lock: CondvarSem,
    ring: Ring,
}

impl Local {
    pub fn new() -> Local {
        Local {
            empty: CondvarSem::new(SLOTS as u64),
            full: CondvarSem::new(0),
            lock: CondvarSem::new(1),
            ring: Ring::new(),
        }
    }

    /// The buffer, as every thread sees it.
    pub fn buffer(&self) -> Buffer<'_, CondvarSem> {
        Buffer {
            empty: &self.empty,
            full: &self.full,
            lock: &self.lock,
            ring: &self.ring,
        }
    }
}

/// The semaphores and the ring, as one side sees them.
pub struct Buffer<'a, S: Semaphore> {
    pub empty: &'a S,
    pub full: &'a S,
    pub lock: &'a S,
    pub ring: &'a Ring,
}

impl<S: Semaphore> Buffer<'_, S> {
    /// Puts `count` items from `producer`, waiting for room as needed.
    pub fn produce(&self, producer: u64, count: u64, alive: &dyn Fn() -> bool) -> io::Result<()> {
        for seq in 0..count {
            self.empty.wait(alive)?;
            self.lock.wait(alive)?;
            // The slot is written under the lock, in the order slots are claimed, so when the
            // consumer sees `full`, every slot up to its own is already written.
            let at = self.ring.put.load(Ordering::Relaxed);
            self.ring.slots[at as usize % SLOTS].store(item(producer, seq), Ordering::Release);
            self.ring.put.store(at + 1, Ordering::Relaxed);
            self.lock.post()?;
            self.full.post()?;
        }
        Ok(())
    }

    /// Takes `total` items (one consumer), checking each producer's sequence; returns how many
    /// arrived out of order or twice. `alive` is also asked every [`CHECK_EVERY`] items: while
    /// one producer keeps the buffer busy, the death of another must not go unnoticed.
    pub fn consume(&self, producers: u64, total: u64, alive: &dyn Fn() -> bool) -> io::Result<u64> {
        let mut next = vec![0u64; producers as usize];
        let mut wrong = 0;
        for i in 0..total {
            if i % CHECK_EVERY == 0 && !alive() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "a producer is gone",
                ));
            }
            self.full.wait(alive)?;
            let at = self.ring.get.load(Ordering::Relaxed);
            let got = self.ring.slots[at as usize % SLOTS].load(Ordering::Acquire);
            self.ring.get.store(at + 1, Ordering::Relaxed);
            self.empty.post()?;
            let (producer, seq) = ((got >> 48) as usize, got & ((1 << 48) - 1));
            match next.get_mut(producer) {
                Some(expected) if *expected == seq => *expected += 1,
                _ => wrong += 1,
            }
        }
        Ok(wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_in_order_between_threads() {
        let local = Local::new();
        let b = local.buffer();
        let wrong = std::thread::scope(|s| {
            for p in 0..3 {
                let b = &b;
                s.spawn(move || b.produce(p, 5_000, &|| true).unwrap());
            }
            b.consume(3, 15_000, &|| true).unwrap()
        });
        assert_eq!(wrong, 0);
    }
}
