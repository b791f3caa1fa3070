//! Streaming: one side writes a long stream in 64 KiB writes, the other reads it all.
//!
//! A stream is a header (its length, 8 bytes) and then that many bytes, written in chunks whose
//! first 8 bytes are the chunk's index. The reader takes whatever each `read` returns (a byte
//! stream keeps no write boundaries), keeps a CRC-32 of every byte, and answers with a
//! [`Receipt`]: bytes, checksum, and how many reads it took. The writer compares the receipt with
//! the checksum it expects, so a lost, repeated or reordered chunk is caught at the far end.
//! Over channels, the chunks themselves travel (ownership moves, nothing is copied), and empty
//! buffers come back to be reused.

use std::io::{self, Read, Write};

use crossbeam_channel::{Receiver, Sender};

/// The size of one write: 64 KiB, a Linux pipe's default capacity.
pub const CHUNK: usize = 64 * 1024;

/// What the reading side saw of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub bytes: u64,
    pub crc: u32,
    /// How many reads (or chunks received) it took.
    pub reads: u64,
}

impl Receipt {
    const LEN: usize = 20;

    fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.bytes.to_le_bytes());
        out[8..12].copy_from_slice(&self.crc.to_le_bytes());
        out[12..].copy_from_slice(&self.reads.to_le_bytes());
        out
    }

    fn decode(b: &[u8; Self::LEN]) -> Receipt {
        Receipt {
            bytes: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            crc: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            reads: u64::from_le_bytes(b[12..].try_into().expect("8 bytes")),
        }
    }
}

/// A chunk's content: a fixed pattern, stamped with the chunk's index.
pub fn new_chunk() -> Vec<u8> {
    (0..CHUNK).map(pattern).collect()
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

fn stamp(chunk: &mut [u8], index: u64) {
    let n = chunk.len().min(8);
    chunk[..n].copy_from_slice(&index.to_le_bytes()[..n]);
}

/// The chunk sizes of a stream of `total` bytes.
fn chunks(total: u64) -> impl Iterator<Item = (u64, usize)> {
    let count = total.div_ceil(CHUNK as u64);
    (0..count).map(move |i| (i, (total - i * CHUNK as u64).min(CHUNK as u64) as usize))
}

/// The CRC-32 a correct reader reports for a stream of `total` bytes (computed once, untimed).
pub fn expected_crc(total: u64) -> u32 {
    let mut chunk = new_chunk();
    let mut crc = crc32fast::Hasher::new();
    for (index, len) in chunks(total) {
        stamp(&mut chunk, index);
        crc.update(&chunk[..len]);
    }
    crc.finalize()
}

/// Writes one stream of `total` bytes to `tx` and returns the reader's receipt from `rx`.
/// `keep_going` is asked before every chunk; when it says no, the stream stops with an
/// `Interrupted` error, so even a stream of gigabytes ends promptly on Ctrl-C.
pub fn send_stream(
    tx: &mut impl Write,
    rx: &mut impl Read,
    total: u64,
    chunk: &mut [u8],
    keep_going: impl Fn() -> bool,
) -> io::Result<Receipt> {
    tx.write_all(&total.to_le_bytes())?;
    for (index, len) in chunks(total) {
        if !keep_going() {
            return Err(stopped());
        }
        stamp(chunk, index);
        tx.write_all(&chunk[..len])?;
    }
    let mut receipt = [0u8; Receipt::LEN];
    rx.read_exact(&mut receipt)?;
    Ok(Receipt::decode(&receipt))
}

/// The reading side: serves streams until EOF between streams; returns how many it read.
pub fn serve_streams(mut rx: impl Read, mut tx: impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut streams = 0;
    loop {
        let mut header = [0u8; 8];
        match rx.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(streams),
            Err(e) => return Err(e),
        }
        let total = u64::from_le_bytes(header);
        let mut receipt = Receipt {
            bytes: 0,
            crc: 0,
            reads: 0,
        };
        let mut crc = crc32fast::Hasher::new();
        while receipt.bytes < total {
            let want = (total - receipt.bytes).min(CHUNK as u64) as usize;
            let n = rx.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF inside a stream",
                ));
            }
            crc.update(&buf[..n]);
            receipt.bytes += n as u64;
            receipt.reads += 1;
        }
        receipt.crc = crc.finalize();
        tx.write_all(&receipt.encode())?;
        streams += 1;
    }
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the stream was stopped")
}

/// What travels over the channel: a chunk, or the end of a stream.
pub enum Piece {
    Chunk(Vec<u8>),
    End,
}

/// Sends one stream of `total` bytes as chunks taken from `pool`, and returns the receipt.
pub fn send_stream_channel(
    tx: &Sender<Piece>,
    pool: &Receiver<Vec<u8>>,
    receipts: &Receiver<Receipt>,
    total: u64,
    keep_going: impl Fn() -> bool,
) -> io::Result<Receipt> {
    let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the reading thread is gone");
    for (index, len) in chunks(total) {
        if !keep_going() {
            return Err(stopped());
        }
        let mut chunk = pool.recv().map_err(|_| gone())?;
        // A buffer shortened for the last chunk of a stream gets its pattern back.
        let had = chunk.len();
        chunk.truncate(len);
        chunk.extend((had..len).map(pattern));
        stamp(&mut chunk, index);
        tx.send(Piece::Chunk(chunk)).map_err(|_| gone())?;
    }
    tx.send(Piece::End).map_err(|_| gone())?;
    receipts.recv().map_err(|_| gone())
}

/// The reading side over channels: checksums each chunk and hands the buffer back to `pool`.
pub fn serve_streams_channel(
    rx: Receiver<Piece>,
    pool: Sender<Vec<u8>>,
    receipts: Sender<Receipt>,
) -> u64 {
    let mut streams = 0;
    let mut receipt = Receipt {
        bytes: 0,
        crc: 0,
        reads: 0,
    };
    let mut crc = crc32fast::Hasher::new();
    for piece in rx {
        match piece {
            Piece::Chunk(chunk) => {
                crc.update(&chunk);
                receipt.bytes += chunk.len() as u64;
                receipt.reads += 1;
                // The pool has room for every buffer it lent; if the sender is gone, so are we.
                if pool.send(chunk).is_err() {
                    break;
                }
            }
            Piece::End => {
                receipt.crc = std::mem::replace(&mut crc, crc32fast::Hasher::new()).finalize();
                if receipts.send(receipt).is_err() {
                    break;
                }
                receipt = Receipt {
                    bytes: 0,
                    crc: 0,
                    reads: 0,
                };
                streams += 1;
            }
        }
    }
    streams
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_over_a_pipe_arrives_whole() {
        let (a_rx, mut a_tx) = std::io::pipe().unwrap();
        let (mut b_rx, b_tx) = std::io::pipe().unwrap();
        let reader = std::thread::spawn(move || serve_streams(a_rx, b_tx));
        let mut chunk = new_chunk();
        let total = 3 * CHUNK as u64 + 1234;
        let r = send_stream(&mut a_tx, &mut b_rx, total, &mut chunk, || true).unwrap();
        assert_eq!((r.bytes, r.crc), (total, expected_crc(total)));
        let r2 = send_stream(&mut a_tx, &mut b_rx, 100, &mut chunk, || true).unwrap();
        assert_eq!((r2.bytes, r2.crc), (100, expected_crc(100)));
        // Stopped at once: nothing of a third stream's body is sent.
        let err = send_stream(&mut a_tx, &mut b_rx, total, &mut chunk, || false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        drop(a_tx);
        assert!(
            reader.join().unwrap().is_err(),
            "the reader saw EOF inside the third stream"
        );
    }

    #[test]
    fn a_stream_over_channels_arrives_whole() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let (pool_tx, pool) = crossbeam_channel::bounded(4);
        let (receipt_tx, receipts) = crossbeam_channel::bounded(1);
        for _ in 0..4 {
            pool_tx.send(new_chunk()).unwrap();
        }
        let reader = std::thread::spawn(move || serve_streams_channel(rx, pool_tx, receipt_tx));
        let total = 5 * CHUNK as u64 + 7;
        let r = send_stream_channel(&tx, &pool, &receipts, total, || true).unwrap();
        assert_eq!((r.bytes, r.crc, r.reads), (total, expected_crc(total), 6));
        // The short last buffer is reused whole by the next stream.
        let r = send_stream_channel(&tx, &pool, &receipts, total, || true).unwrap();
        assert_eq!((r.bytes, r.crc), (total, expected_crc(total)));
        drop(tx);
        assert_eq!(reader.join().unwrap(), 2);
    }

    #[test]
    fn a_repeated_chunk_changes_the_checksum() {
        // Chunk 0 twice instead of chunks 0 and 1: same length, different checksum.
        let mut c = new_chunk();
        stamp(&mut c, 0);
        let mut h = crc32fast::Hasher::new();
        h.update(&c);
        h.update(&c);
        assert_ne!(h.finalize(), expected_crc(2 * CHUNK as u64));
    }
}
