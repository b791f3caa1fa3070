//! The messages the two sides exchange over a pair of rings (or channels), and both ends of the
//! exchange: a round trip, a one-way stream answered by a [`Receipt`], and the far side's
//! [`echo_loop`] (rings) and [`echo_channel`] (channels).
//!
//! A message is `bytes` long: its sequence number (bytes 0..8), a CRC-32 of its payload (8..12),
//! its kind (12..16), then the payload. The far end checks both: a lost, repeated or reordered
//! message breaks the sequence, a damaged one the CRC.

use std::io;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use shm::ring::Ring;
use shm::wait::{self, Mode as WaitMode};

/// The largest message: the payload template's length.
const MAX_BYTES: usize = crate::MAX_BYTES as usize;

/// What a message asks of the far side, in its bytes 12..16.
pub const ECHO: u32 = 0; // Send it back (round trips).
pub const DATA: u32 = 1; // Check it and count it (streams).
pub const END: u32 = 2; // The stream is over: answer with a receipt.
pub const STOP: u32 = 3; // Stop.

/// The payload every message carries, written with one copy (as a real message is written from
/// a buffer): a fixed pattern, up to the largest message.
fn template() -> &'static [u8] {
    static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| (0..MAX_BYTES).map(|i| (i % 251) as u8).collect())
}

/// Copies `src` into `dst`, of the same length. A message of one cache line (up to 64 bytes)
/// is copied inline, as two overlapping unaligned 32-byte moves (what `memcpy` does for such
/// sizes, without the call and its dispatch on the size); a longer one by `memcpy`.
#[inline(always)]
pub fn copy(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    assert_eq!(n, dst.len(), "a copy between buffers of one length");
    if (32..=64).contains(&n) {
        type Half = [u8; 32];
        // SAFETY: both buffers hold `n` bytes, 32 <= n <= 64, so [0, 32) and [n - 32, n) lie
        // inside each; unaligned reads and writes of a byte array need no alignment; `src` and
        // `dst` are a shared and an exclusive borrow, so they do not overlap.
        unsafe {
            let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
            let (head, tail) = (
                s.cast::<Half>().read_unaligned(),
                s.add(n - 32).cast::<Half>().read_unaligned(),
            );
            d.cast::<Half>().write_unaligned(head);
            d.add(n - 32).cast::<Half>().write_unaligned(tail);
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// Fills a message: its sequence number, a CRC-32 of its payload, its kind, then the payload.
pub fn fill(msg: &mut [u8], seq: u64, kind: u32) {
    let payload = &template()[..msg.len() - 16];
    copy(&mut msg[16..], payload);
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[8..12].copy_from_slice(&payload_crc(payload.len()).to_le_bytes());
    set_kind(msg, kind);
}

pub fn set_kind(msg: &mut [u8], kind: u32) {
    msg[12..16].copy_from_slice(&kind.to_le_bytes());
}

pub fn kind_of(msg: &[u8]) -> u32 {
    u32::from_le_bytes(msg[12..16].try_into().expect("4 bytes"))
}

/// The CRC-32 of the template's first `len` bytes, computed once per length: the sender knows
/// what it sends. (The receiver still computes the CRC of every payload it gets.)
fn payload_crc(len: usize) -> u32 {
    thread_local!(static LAST: std::cell::Cell<(usize, u32)> = const { std::cell::Cell::new((usize::MAX, 0)) });
    LAST.with(|last| {
        if last.get().0 != len {
            last.set((len, crc32fast::hash(&template()[..len])));
        }
        last.get().1
    })
}

/// Whether `msg` is message `seq`, intact.
pub fn is_message(msg: &[u8], seq: u64) -> bool {
    msg[..8] == seq.to_le_bytes() && msg[8..12] == crc32fast::hash(&msg[16..]).to_le_bytes()
}

/// What the far side counted of one stream, sent back when the stream ends (in a message: its
/// count, its kind END, what was wrong, the first sequence number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    count: u64,
    wrong: u64,
    first: u64,
}

impl Receipt {
    /// Counts one DATA message: each must be the one after the stream's first, intact.
    pub fn check(&mut self, msg: &[u8]) {
        if self.count == 0 {
            self.first = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
        }
        self.wrong += u64::from(!is_message(msg, self.first + self.count));
        self.count += 1;
    }

    pub fn write(&self, msg: &mut [u8]) {
        msg[..8].copy_from_slice(&self.count.to_le_bytes());
        set_kind(msg, END);
        msg[16..24].copy_from_slice(&self.wrong.to_le_bytes());
        msg[24..32].copy_from_slice(&self.first.to_le_bytes());
    }

    pub fn read(msg: &[u8]) -> Receipt {
        let word = |at: usize| u64::from_le_bytes(msg[at..at + 8].try_into().expect("8 bytes"));
        Receipt {
            count: word(0),
            wrong: word(16),
            first: word(24),
        }
    }

    /// How many of the `n` messages sent from `first` did not arrive once, in order, intact.
    pub fn missed(&self, first: u64, n: u64) -> u64 {
        self.wrong + n.abs_diff(self.count) + u64::from(self.count > 0 && self.first != first)
    }
}

/// One round trip through `out` and `back`: message `seq` goes out as ECHO, and this returns
/// once the answer is in `back`'s next slot, untaken: the caller stops its clock, then takes
/// it with [`came_back`] (a CRC over the payload is work of its own, not the hand-off's).
pub fn round_trip_ring(
    out: &Ring<'_>,
    back: &Ring<'_>,
    mode: WaitMode,
    alive: &dyn Fn() -> bool,
    seq: u64,
) -> io::Result<()> {
    wait::push(out, mode, alive, |m| fill(m, seq, ECHO))?;
    wait::wait_item(back, mode, alive)
}

/// Takes the answer a [`round_trip_ring`] waited for: whether it is message `seq`, intact.
pub fn came_back(
    back: &Ring<'_>,
    mode: WaitMode,
    alive: &dyn Fn() -> bool,
    seq: u64,
) -> io::Result<bool> {
    wait::pop(back, mode, alive, |m| is_message(m, seq))
}

/// Streams `n` DATA messages from `first` through `out`, then END, and reads the receipt that
/// comes back; returns how many messages did not arrive once, in order, intact.
pub fn stream_ring(
    out: &Ring<'_>,
    back: &Ring<'_>,
    mode: WaitMode,
    alive: &dyn Fn() -> bool,
    first: u64,
    n: u64,
) -> io::Result<u64> {
    for k in 0..n {
        wait::push(out, mode, alive, |m| fill(m, first + k, DATA))?;
    }
    wait::push(out, mode, alive, |m| set_kind(m, END))?;
    let receipt = wait::pop(back, mode, alive, Receipt::read)?;
    Ok(receipt.missed(first, n))
}

/// How an echo waits, from how its exchange waits: an echo spins only while its exchange runs.
/// Idle during another contender's block, it sleeps, or two spinners would share the peer CPU
/// and each hand-off would wait for the scheduler.
pub fn echo_mode(mode: WaitMode) -> WaitMode {
    if mode == WaitMode::Spin {
        WaitMode::Patient
    } else {
        mode
    }
}

/// The far side of a ring pair: sends ECHO messages back, checks DATA messages and answers END
/// with their receipt, returns at STOP. An echo is copied straight from the inbox's slot into
/// the outbox's: the inbox slot is held until the outbox has room (the other side always drains
/// its inbox, so that wait ends).
pub fn echo_loop(
    inbox: &Ring<'_>,
    outbox: &Ring<'_>,
    mode: WaitMode,
    alive: &dyn Fn() -> bool,
) -> io::Result<()> {
    let mut stream = Receipt::default();
    loop {
        let kind = wait::pop(inbox, mode, alive, |m| {
            let kind = kind_of(m);
            match kind {
                ECHO => wait::push(outbox, mode, alive, |slot| copy(slot, m))?,
                DATA => stream.check(m),
                END => {
                    let receipt = std::mem::take(&mut stream);
                    wait::push(outbox, mode, alive, |slot| receipt.write(slot))?;
                }
                STOP => {}
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a message of unknown kind {other}"),
                    ));
                }
            }
            Ok(kind)
        })??;
        if kind == STOP {
            return Ok(());
        }
    }
}

/// The message buffers that travel over channels, as a ring's slots do.
pub type Buffer = Box<[u8]>;

/// One round trip over channels: `buf` goes out as message `seq` and comes back into `buf`
/// (check it with [`is_message`], after the clock has stopped).
pub fn round_trip_channel(
    out: &Sender<Buffer>,
    back: &Receiver<Buffer>,
    buf: &mut Option<Buffer>,
    seq: u64,
) -> Result<()> {
    let gone = "the echo thread is gone";
    let mut m = buf.take().expect("the buffer came back");
    fill(&mut m, seq, ECHO);
    out.send(m).context(gone)?;
    *buf = Some(back.recv().context(gone)?);
    Ok(())
}

/// The same stream over channels: the buffers of `pool` travel, the far side sends each back
/// once checked (as a ring's slot comes free), and the END buffer comes back with the receipt.
pub fn stream_channel(
    out: &Sender<Buffer>,
    back: &Receiver<Buffer>,
    pool: &mut Vec<Buffer>,
    first: u64,
    n: u64,
) -> Result<u64> {
    let gone = "the echo thread is gone";
    let next_buffer = |pool: &mut Vec<Buffer>| match pool.pop() {
        Some(m) => Ok(m),
        None => back.recv().context(gone),
    };
    for k in 0..n {
        let mut m = next_buffer(pool)?;
        fill(&mut m, first + k, DATA);
        out.send(m).context(gone)?;
    }
    let mut m = next_buffer(pool)?;
    set_kind(&mut m, END);
    out.send(m).context(gone)?;
    loop {
        let m = back.recv().context(gone)?;
        let end = kind_of(&m) == END;
        let receipt = end.then(|| Receipt::read(&m));
        pool.push(m);
        if let Some(receipt) = receipt {
            return Ok(receipt.missed(first, n));
        }
    }
}

/// The far side over channels: every buffer goes back, echoed, or checked and returned
/// empty-handed (the producer's pool, as a ring's slots come back), or carrying a stream's
/// receipt. An empty buffer, or the other side gone, ends it.
pub fn echo_channel(inbox: Receiver<Buffer>, outbox: Sender<Buffer>) {
    let mut stream = Receipt::default();
    for mut msg in inbox {
        if msg.is_empty() {
            break;
        }
        match kind_of(&msg) {
            DATA => stream.check(&msg),
            END => std::mem::take(&mut stream).write(&mut msg),
            _ => {}
        }
        if outbox.send(msg).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_checked_by_sequence_and_checksum() {
        let mut m = vec![0u8; 4096];
        fill(&mut m, 42, DATA);
        assert!(is_message(&m, 42));
        assert_eq!(kind_of(&m), DATA);
        assert!(!is_message(&m, 43), "a message out of sequence");
        m[1000] ^= 1;
        assert!(!is_message(&m, 42), "a damaged payload");
    }

    /// The far side's receipt counts what a stream lost, repeated or damaged; the sender reads it
    /// back from a message.
    #[test]
    fn a_receipt_counts_what_went_wrong() {
        let stream = |seqs: &[u64], damage: Option<usize>| {
            let mut r = Receipt::default();
            for (i, &seq) in seqs.iter().enumerate() {
                let mut m = vec![0u8; 64];
                fill(&mut m, seq, DATA);
                if damage == Some(i) {
                    m[40] ^= 1;
                }
                r.check(&m);
            }
            let mut wire = vec![0u8; 64];
            r.write(&mut wire);
            assert_eq!(kind_of(&wire), END);
            Receipt::read(&wire).missed(10, 4)
        };
        assert_eq!(stream(&[10, 11, 12, 13], None), 0);
        assert_eq!(stream(&[10, 11, 12, 13], Some(2)), 1, "a damaged payload");
        assert_eq!(stream(&[10, 12, 13], None), 3, "one lost, two out of place");
        assert_eq!(
            stream(&[10, 11, 11, 12], None),
            2,
            "a repeat shifts the rest"
        );
        assert_eq!(
            stream(&[11, 12, 13], None),
            2,
            "the first lost: short, wrong first"
        );
        assert_eq!(stream(&[10, 11, 12, 13, 14], None), 1, "one too many");
    }
}
