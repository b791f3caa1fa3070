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
//! the other side stores the word, then (after a full fence) wakes if the flag is up.
//!
//! A sleep has no timeout: arming a timer for each one cost a blocking round trip on one CPU
//! about 400 ns of its 4.3 µs here (two sleeps per round trip), and made it slower than a
//! pipe's. A side that must notice its peer's death, or a shutdown, while asleep runs
//! [`with_nudges`]: a thread of its own wakes it every [`RECHECK`] while it sleeps, and the
//! sleeper asks whether its peer is alive. (A child needs none: it dies with its parent.)

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

use crate::ring::Ring;

/// How long to spin before sleeping, in `block` mode.
pub const SPIN: Duration = Duration::from_micros(10);
/// The longest sleep before a liveness check, for a side woken by [`with_nudges`].
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

/// Sleeps while `word` holds `seen`, with no timeout, until a `FUTEX_WAKE` on it (or a signal).
fn futex_wait(word: &AtomicU32, seen: u32) -> io::Result<()> {
    // SAFETY: `word` is a valid, aligned u32 for the call; a null timeout touches no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            std::ptr::null::<libc::timespec>(),
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
            futex_wait(seq, seen)?;
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
/// has drained), and which takes the next message in any case: the sender of a round trip
/// spins until the answer comes.
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

/// Whoever may sleep on a ring pair's words: its flag, and the words it sleeps on.
pub type Sleeper<'a> = (&'a AtomicU32, Vec<&'a AtomicU32>);

/// The sleepers of a side that produces into `out` and consumes from `back`: as a consumer, on
/// a stamp of `back`; as a producer, on `out`'s consumer position.
pub fn sleepers<'a>(out: &Ring<'a>, back: &Ring<'a>) -> [Sleeper<'a>; 2] {
    [
        (&back.header.consumer_waiting.0, back.stamps().collect()),
        (&out.header.producer_waiting.0, vec![&out.header.tail.0]),
    ]
}

/// Runs `f` while a thread of ours wakes every [`RECHECK`] each of `sleepers` whose flag is up,
/// so that a sleep, which has no timeout, still ends to look at its peer's liveness. (The
/// words are a side's own ring pair: a sleeping consumer's flag and the stamps of its ring, a
/// sleeping producer's flag and the consumer's position.)
pub fn with_nudges<T>(sleepers: &[Sleeper<'_>], f: impl FnOnce() -> T) -> io::Result<T> {
    if sleepers.is_empty() {
        return Ok(f());
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let nudger = std::thread::Builder::new()
            .name("shm-nudge".into())
            .spawn_scoped(s, || {
                while !done.load(Ordering::Acquire) {
                    std::thread::park_timeout(RECHECK);
                    for (flag, words) in sleepers {
                        if flag.load(Ordering::SeqCst) != 0 {
                            words.iter().for_each(|word| futex_wake(word));
                        }
                    }
                }
            })?;
        let out = f();
        done.store(true, Ordering::Release);
        nudger.thread().unpark();
        Ok(out)
    })
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
