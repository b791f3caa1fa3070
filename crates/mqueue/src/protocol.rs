//! What the parent and a child say to each other over the queues: messages of `--bytes` bytes
//! (see [`crate::queue::fill`]), an empty one to end a stream (or the echo), a one-byte one to
//! stop the sink, and the sink's [`Receipt`] for each stream.

use crate::queue;

/// An empty message: the end of a stream (to the sink) or of the exchange (to the echo). The
/// round trips' watchdog sends one to the parent too, to wake it (see [`crate::round_trip`]).
pub const END: &[u8] = &[];
/// A one-byte message, shorter than any real one (at least 8 bytes): the sink stops.
pub const STOP: &[u8] = &[0];

/// The size of a receipt on the wire.
pub const RECEIPT: usize = 24;

/// What the receiving side of a stream counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    pub count: u64,
    pub crc: u32,
    pub wrong: u64,
}

impl Receipt {
    pub fn encode(self) -> [u8; RECEIPT] {
        let mut b = [0u8; RECEIPT];
        b[..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..12].copy_from_slice(&self.crc.to_le_bytes());
        b[16..].copy_from_slice(&self.wrong.to_le_bytes());
        b
    }

    pub fn decode(b: [u8; RECEIPT]) -> Receipt {
        Receipt {
            count: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            crc: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            wrong: u64::from_le_bytes(b[16..].try_into().expect("8 bytes")),
        }
    }
}

/// Checks one received message and adds it to the receipt.
pub fn tally(r: &mut Receipt, crc: &mut crc32fast::Hasher, msg: &[u8]) {
    if !queue::is_message(msg, r.count) {
        r.wrong += 1;
    }
    crc.update(msg);
    r.count += 1;
}
