//! The baseline between threads: the same frames over crossbeam channels, where the buffer
//! itself travels. Nothing is copied: a frame sent is the very heap block received.
//!
//! The far side ([`serve`]) checks every frame exactly as the socket side does and hands the
//! buffer back, which is the echo of a ping-pong and the buffer pool of a stream alike.

use std::io;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::wire;

/// What travels between the two threads.
pub enum Msg {
    Frame(Box<[u8]>),
    /// "How many frames have you checked?"
    Mark,
    Receipt(u64),
}

/// One end of a pair of channels.
pub struct End {
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
}

/// Two ends, each channel holding at most `depth` messages.
pub fn pair(depth: usize) -> (End, End) {
    let (a_tx, b_rx) = bounded(depth);
    let (b_tx, a_rx) = bounded(depth);
    (End { tx: a_tx, rx: a_rx }, End { tx: b_tx, rx: b_rx })
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the other thread is gone")
}

impl End {
    fn send(&self, msg: Msg) -> io::Result<()> {
        self.tx.send(msg).map_err(|_| gone())
    }

    fn recv(&self) -> io::Result<Msg> {
        self.rx.recv().map_err(|_| gone())
    }

    /// Asks the far side for its count, which must be `sent`; buffers handed back on the way
    /// go to `spare`.
    fn receipt(&self, sent: u64, spare: &mut Vec<Box<[u8]>>) -> io::Result<u64> {
        self.send(Msg::Mark)?;
        loop {
            match self.recv()? {
                Msg::Frame(buf) => spare.push(buf),
                Msg::Receipt(n) if n == sent => return Ok(n),
                Msg::Receipt(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the far thread counted {n} frames, we sent {sent}"),
                    ));
                }
                Msg::Mark => return Err(gone()),
            }
        }
    }
}

/// The far thread: checks every frame (numbered from 0) and hands it back; answers a mark
/// with its count. Ends when the near side hangs up; returns the count.
pub fn serve(end: End) -> io::Result<u64> {
    let mut count = 0;
    for msg in end.rx.iter() {
        match msg {
            Msg::Frame(buf) => {
                wire::check(&buf, count)?;
                count += 1;
                if end.tx.send(Msg::Frame(buf)).is_err() {
                    break;
                }
            }
            Msg::Mark => end.send(Msg::Receipt(count))?,
            Msg::Receipt(_) => return Err(gone()),
        }
    }
    Ok(count)
}

/// The near side of a ping-pong over channels.
pub struct Pinger {
    end: End,
    buf: Vec<Box<[u8]>>,
    seq: u64,
    /// Whether every echo came back in the very buffer sent (same heap address).
    pub same_buffer: bool,
}

impl Pinger {
    /// Frames of `bytes` bytes, header included.
    pub fn new(end: End, bytes: usize) -> Self {
        Pinger {
            end,
            buf: vec![vec![0; bytes].into_boxed_slice()],
            seq: 0,
            same_buffer: true,
        }
    }

    /// One round trip, checked.
    pub fn round_trip(&mut self) -> io::Result<()> {
        let mut buf = self.buf.pop().expect("the buffer came back last time");
        wire::fill(&mut buf, self.seq);
        let sent_at = buf.as_ptr();
        self.end.send(Msg::Frame(buf))?;
        let Msg::Frame(back) = self.end.recv()? else {
            return Err(gone());
        };
        wire::check(&back, self.seq)?;
        self.same_buffer &= std::ptr::eq(back.as_ptr(), sent_at);
        self.buf.push(back);
        self.seq += 1;
        Ok(())
    }

    /// Checks that the far thread counted every frame; hangs up.
    pub fn finish(mut self) -> io::Result<u64> {
        self.end.receipt(self.seq, &mut self.buf)
    }
}

/// The near side of a one-way stream over channels: a few buffers (filled frames) in flight,
/// each handed back by the far side once checked. Make the channels of [`pair`] at least as
/// deep as the number of buffers, so a handed-back buffer never waits.
pub struct Streamer {
    end: End,
    spare: Vec<Box<[u8]>>,
    next: u64,
}

impl Streamer {
    /// `buffers` frames of `bytes` bytes each.
    pub fn new(end: End, bytes: usize, buffers: usize) -> Self {
        let spare = (0..buffers)
            .map(|_| {
                let mut b = vec![0u8; bytes].into_boxed_slice();
                wire::fill(&mut b, 0);
                b
            })
            .collect();
        Streamer {
            end,
            spare,
            next: 0,
        }
    }

    /// Sends `count` frames, asking `keep_going` every 16; then checks the far side's count,
    /// and returns it (every frame sent so far).
    pub fn send(&mut self, count: u64, keep_going: impl Fn() -> bool) -> io::Result<u64> {
        for _ in 0..count {
            if self.next.is_multiple_of(16) && !keep_going() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
            }
            let mut buf = match self.spare.pop() {
                Some(b) => b,
                None => match self.end.recv()? {
                    Msg::Frame(b) => b,
                    _ => return Err(gone()),
                },
            };
            wire::renumber(&mut buf, self.next);
            self.end.send(Msg::Frame(buf))?;
            self.next += 1;
        }
        // Every frame sent before the mark comes back before the receipt: channels keep order.
        self.end.receipt(self.next, &mut self.spare)
    }
}
