//! Waiting for the other side of a ring: spin briefly, then sleep on a futex in the shared page
//! (`--wait block`; with both sides on one CPU, sleep at once), or spin only (`--wait spin`,
//! sensible only with the two sides on two CPUs: on one CPU a spinner waits for preemption,
//! milliseconds per hand-off).
//!
//! A consumer sleeps on the stamp of the slot it waits for, a producer on the consumer's
//! position (see `ring.rs`): each on the very word the other side stores to. The futex words
//! are not `FUTEX_PRIVATE`, so a sleeper in one process is woken by a store and `FUTEX_WAKE` in
//! another. The order that loses no wake-up: the sleeper reads the word, raises its `waiting`
//! flag, checks its condition once more, and sleeps only if the word still holds what it read;
//! the other side stores the word, then (after a full fence) wakes if the flag is up. Sleeps
//! last at most [`RECHECK`], after which the sleeper asks whether its peer is alive.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

use crate::ring::Ring;

/// How long to spin before sleeping, in `block` mode.
pub const SPIN: Duration = Duration::from_micros(10);
/// The longest sleep before a liveness check.
pub const RECHECK: Duration = Duration::from_millis(50);

/// How a side waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Spin about 10 µs, then sleep on the futex.
    Block,
    /// Spin only.
    Spin,
    /// Sleep on the futex at once: for two sides on one CPU, where spinning only keeps the
    /// other side from running.
    Sleep,
    /// Spin up to [`PATIENCE`], then sleep: for an echo side in spin mode, which must spin while
    /// its exchange is running but must not burn its CPU while another contender measures.
    Patient,
}

/// How long a [`Mode::Patient`] side spins before it sleeps.
pub const PATIENCE: Duration = Duration::from_micros(500);

fn futex_wait(word: &AtomicU32, seen: u32, timeout: Duration) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the call; `ts` outlives it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts,
            0,
            0,
        )
    };
    if r == -1 {
        let e = io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(libc::EAGAIN | libc::ETIMEDOUT | libc::EINTR)
        ) {
            return Err(e);
        }
    }
    Ok(())
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE touches no other memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0,
            0,
            0,
        )
    };
}

/// Waits until `ready()`; `seq` is the word the other side stores to, `waiting` our flag.
#[inline(always)]
fn wait_until(
    ready: impl Fn() -> bool,
    seq: &AtomicU32,
    waiting: &AtomicU32,
    mode: Mode,
    peer_alive: &dyn Fn() -> bool,
) -> io::Result<()> {
    let budget = if mode == Mode::Patient {
        PATIENCE
    } else {
        SPIN
    };
    // The clock is read only every 64 spins, the first time after 64 misses: a hand-off that
    // comes within them (the common case when spinning) costs no clock read at all, and none
    // stands between the other side's store and our seeing it. (The budget starts that much
    // late: a few hundred nanoseconds.)
    let mut spin_until = None;
    let mut spins = 0u64;
    loop {
        if ready() {
            return Ok(());
        }
        let keep_spinning = match mode {
            Mode::Spin => true,
            Mode::Sleep => false,
            Mode::Block | Mode::Patient => {
                spins % 64 != 63 || {
                    let now = Instant::now();
                    now < *spin_until.get_or_insert(now + budget)
                }
            }
        };
        if keep_spinning {
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(1 << 20) && !peer_alive() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the other side is gone",
                ));
            }
            continue;
        }
        let seen = seq.load(Ordering::SeqCst);
        waiting.store(1, Ordering::SeqCst);
        if !ready() {
            futex_wait(seq, seen, RECHECK)?;
        }
        waiting.store(0, Ordering::SeqCst);
        if !ready() && !peer_alive() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the other side is gone",
            ));
        }
    }
}

/// After storing `word`: wakes the other side if its flag says it sleeps (or is about to) on
/// it. Between sides that block, a full fence orders our store before our reading of the flag,
/// as the sleeper's orders its flag before its second look at the word: one of the two sees
/// the other, and no wake-up is lost. Between spinning sides the fence is left out, for it
/// would cost every hand-off the drain of our store buffer: there the only sleeper is an idle
/// [`Mode::Patient`] echo, whose futex re-reads the word in the kernel (long after our store
/// has drained) and whose sleep lasts at most [`RECHECK`] in any case.
#[inline]
fn wake_if_waiting(word: &AtomicU32, waiting: &AtomicU32, mode: Mode) {
    if matches!(mode, Mode::Block | Mode::Sleep) {
        fence(Ordering::SeqCst);
    }
    if waiting.load(Ordering::Relaxed) != 0 {
        futex_wake(word);
    }
}

/// Producer: waits for a free slot, fills it, publishes it, wakes a sleeping consumer.
pub fn push(
    ring: &Ring<'_>,
    mode: Mode,
    peer_alive: &dyn Fn() -> bool,
    fill: impl FnOnce(&mut [u8]),
) -> io::Result<()> {
    let h = ring.header;
    wait_until(
        || ring.has_space(),
        &h.tail.0,
        &h.producer_waiting.0,
        mode,
        peer_alive,
    )?;
    let stamp = ring
        .try_push(fill)
        .expect("the only producer found space a moment ago");
    wake_if_waiting(stamp, &h.consumer_waiting.0, mode);
    Ok(())
}

/// Consumer: waits until the next slot holds a message, without taking it (then
/// [`pop`] takes it at once).
#[inline]
pub fn wait_item(ring: &Ring<'_>, mode: Mode, peer_alive: &dyn Fn() -> bool) -> io::Result<()> {
    let h = ring.header;
    let (stamp, there) = ring.item();
    if there {
        return Ok(());
    }
    wait_until(
        || ring.item().1,
        stamp,
        &h.consumer_waiting.0,
        mode,
        peer_alive,
    )
}

/// Consumer: waits for a published slot, reads it, frees it, wakes a sleeping producer.
pub fn pop<T>(
    ring: &Ring<'_>,
    mode: Mode,
    peer_alive: &dyn Fn() -> bool,
    read: impl FnOnce(&[u8]) -> T,
) -> io::Result<T> {
    wait_item(ring, mode, peer_alive)?;
    let out = ring
        .try_pop(read)
        .expect("the only consumer found an item a moment ago");
    if ring.show_tail() {
        let h = ring.header;
        wake_if_waiting(&h.tail.0, &h.producer_waiting.0, mode);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::Local;

    #[test]
    fn blocking_hand_offs_between_threads() {
        let local = Local::new(2, 8);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ring = local.ring();
                for i in 0..2_000u64 {
                    push(&ring, Mode::Block, &|| true, |slot| {
                        slot.copy_from_slice(&i.to_le_bytes())
                    })
                    .unwrap();
                    if i % 500 == 0 {
                        std::thread::sleep(Duration::from_millis(1)); // Make the consumer sleep.
                    }
                }
            });
            let ring = local.ring();
            for i in 0..2_000u64 {
                let v = pop(&ring, Mode::Block, &|| true, |slot| {
                    u64::from_le_bytes(slot.try_into().unwrap())
                })
                .unwrap();
                assert_eq!(v, i);
            }
        });
    }
}
