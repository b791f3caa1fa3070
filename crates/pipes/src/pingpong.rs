//! Ping-pong: one side sends a message, the other sends it back, again and again.
//!
//! The same code runs over two pipes (between two processes, or two threads) and over two
//! crossbeam channels (between two threads). Every message starts with its sequence number and
//! carries a pattern derived from it, so both ends check that each message arrived once, in
//! order and intact. When the pinging side closes its write end, the echo side sees EOF at a
//! message boundary and answers with how many messages it echoed: the far end's own count.
//!
//! Nothing here knows about measurement or reports; it can be lifted out on its own.

use std::io::{self, Read, Write};

use crossbeam_channel::{Receiver, Sender};

/// Bytes of the sequence number at the start of every message (the smallest message).
pub const HEADER: usize = 8;

/// One round trip at a time, whatever carries it.
pub trait RoundTrip {
    /// Sends the next message and waits for it to come back, checking it.
    fn round_trip(&mut self) -> io::Result<()>;
}

/// Fills `msg` as message number `seq`: the number, then a pattern that depends on it.
pub fn fill(msg: &mut [u8], seq: u64) {
    msg[..HEADER].copy_from_slice(&seq.to_le_bytes());
    let seed = seq as u8;
    for (i, b) in msg[HEADER..].iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
}

/// Checks that `msg` is message number `seq`, intact.
pub fn verify(msg: &[u8], seq: u64) -> io::Result<()> {
    let got = u64::from_le_bytes(msg[..HEADER].try_into().expect("HEADER bytes"));
    if got != seq {
        return Err(invalid(format!(
            "expected message {seq}, got message {got}"
        )));
    }
    let seed = seq as u8;
    match msg[HEADER..]
        .iter()
        .enumerate()
        .position(|(i, &b)| b != seed.wrapping_add(i as u8))
    {
        None => Ok(()),
        Some(at) => Err(invalid(format!(
            "message {seq} is corrupt at byte {}",
            HEADER + at
        ))),
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one whole message. `Ok(false)` is a clean EOF *between* messages; EOF inside one
/// is an error, since a byte stream may deliver a message in several pieces.
pub fn read_message(rx: &mut impl Read, msg: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < msg.len() {
        match rx.read(&mut msg[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF inside a message",
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The pinging side over a byte stream: writes to `tx`, reads the echo from `rx`.
pub struct StreamPinger<R, W> {
    rx: R,
    tx: Option<W>,
    sent: Vec<u8>,
    echoed: Vec<u8>,
    seq: u64,
}

impl<R: Read, W: Write> StreamPinger<R, W> {
    /// Messages of `bytes` bytes (at least [`HEADER`]); the buffers are allocated here, once.
    pub fn new(rx: R, tx: W, bytes: usize) -> Self {
        StreamPinger {
            rx,
            tx: Some(tx),
            sent: vec![0; bytes],
            echoed: vec![0; bytes],
            seq: 0,
        }
    }

    /// The number of round trips made.
    pub fn count(&self) -> u64 {
        self.seq
    }

    /// Closes our write end (the echo side then sees EOF) and reads the echo side's count,
    /// which must equal the number of round trips made.
    pub fn finish(mut self) -> io::Result<u64> {
        // Dropping the writer closes this side's only copy of the write end: that is what lets
        // the reader see EOF. A copy left open anywhere would make it wait forever.
        drop(self.tx.take());
        let mut count = [0u8; 8];
        self.rx.read_exact(&mut count)?;
        let echoed = u64::from_le_bytes(count);
        if echoed != self.seq {
            return Err(invalid(format!(
                "the echo side counted {echoed} messages, we sent {}",
                self.seq
            )));
        }
        Ok(echoed)
    }
}

impl<R: Read, W: Write> RoundTrip for StreamPinger<R, W> {
    fn round_trip(&mut self) -> io::Result<()> {
        fill(&mut self.sent, self.seq);
        let tx = self.tx.as_mut().expect("not finished");
        tx.write_all(&self.sent)?;
        if !read_message(&mut self.rx, &mut self.echoed)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the echo side closed its end",
            ));
        }
        if self.echoed != self.sent {
            verify(&self.echoed, self.seq)?;
            return Err(invalid(format!("message {} came back changed", self.seq)));
        }
        self.seq += 1;
        Ok(())
    }
}

/// The echo side over a byte stream: checks and returns every message until EOF, then writes
/// the number of messages echoed. Returns that number.
pub fn stream_echo(mut rx: impl Read, mut tx: impl Write, bytes: usize) -> io::Result<u64> {
    let mut msg = vec![0; bytes];
    let mut count = 0;
    while read_message(&mut rx, &mut msg)? {
        verify(&msg, count)?;
        tx.write_all(&msg)?;
        count += 1;
    }
    tx.write_all(&count.to_le_bytes())?;
    Ok(count)
}

/// The pinging side over channels: the buffer itself travels, no byte is copied.
pub struct ChannelPinger {
    tx: Sender<Box<[u8]>>,
    rx: Receiver<Box<[u8]>>,
    buf: Option<Box<[u8]>>,
    seq: u64,
    /// Whether every echo came back in the very buffer we sent (same heap address).
    pub same_buffer: bool,
}

impl ChannelPinger {
    /// Messages of `bytes` bytes (at least [`HEADER`]).
    pub fn new(tx: Sender<Box<[u8]>>, rx: Receiver<Box<[u8]>>, bytes: usize) -> Self {
        ChannelPinger {
            tx,
            rx,
            buf: Some(vec![0; bytes].into_boxed_slice()),
            seq: 0,
            same_buffer: true,
        }
    }

    /// The number of round trips made.
    pub fn count(&self) -> u64 {
        self.seq
    }
}

impl RoundTrip for ChannelPinger {
    fn round_trip(&mut self) -> io::Result<()> {
        let mut buf = self.buf.take().expect("the buffer came back last time");
        fill(&mut buf, self.seq);
        let sent_at = buf.as_ptr();
        self.tx
            .send(buf)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the echo thread is gone"))?;
        let back = self
            .rx
            .recv()
            .map_err(|_| io::Error::new(io::ErrorKind::UnexpectedEof, "the echo thread is gone"))?;
        verify(&back, self.seq)?;
        self.same_buffer &= std::ptr::eq(back.as_ptr(), sent_at);
        self.buf = Some(back);
        self.seq += 1;
        Ok(())
    }
}

/// The echo side over channels: checks and returns every message until the sender hangs up.
pub fn channel_echo(rx: Receiver<Box<[u8]>>, tx: Sender<Box<[u8]>>) -> io::Result<u64> {
    let mut count = 0;
    for msg in rx {
        verify(&msg, count)?;
        if tx.send(msg).is_err() {
            break; // The pinger left; it knows how many it got back.
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_catches_reordering_and_corruption() {
        let mut m = vec![0; 32];
        fill(&mut m, 7);
        assert!(verify(&m, 7).is_ok());
        assert!(
            verify(&m, 8)
                .unwrap_err()
                .to_string()
                .contains("expected message 8, got message 7")
        );
        m[20] ^= 1;
        assert!(
            verify(&m, 7)
                .unwrap_err()
                .to_string()
                .contains("corrupt at byte 20")
        );
    }

    #[test]
    fn a_stream_pinger_and_echo_agree_over_pipes() {
        let (a_rx, a_tx) = std::io::pipe().unwrap();
        let (b_rx, b_tx) = std::io::pipe().unwrap();
        let echo = std::thread::spawn(move || stream_echo(a_rx, b_tx, 100));
        let mut p = StreamPinger::new(b_rx, a_tx, 100);
        for _ in 0..50 {
            p.round_trip().unwrap();
        }
        assert_eq!(p.finish().unwrap(), 50);
        assert_eq!(echo.join().unwrap().unwrap(), 50);
    }

    #[test]
    fn eof_inside_a_message_is_an_error() {
        let mut half = &[0u8; 5][..];
        let mut msg = [0u8; 8];
        assert_eq!(
            read_message(&mut half, &mut msg).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let mut empty = &[][..];
        assert!(!read_message(&mut empty, &mut msg).unwrap());
    }

    #[test]
    fn channels_move_the_buffer_without_copying() {
        let (to_echo, echo_rx) = crossbeam_channel::bounded(1);
        let (echo_tx, from_echo) = crossbeam_channel::bounded(1);
        let echo = std::thread::spawn(move || channel_echo(echo_rx, echo_tx));
        let mut p = ChannelPinger::new(to_echo, from_echo, 64);
        for _ in 0..20 {
            p.round_trip().unwrap();
        }
        assert!(p.same_buffer);
        assert_eq!(p.count(), 20);
        drop(p);
        assert_eq!(echo.join().unwrap().unwrap(), 20);
    }
}
