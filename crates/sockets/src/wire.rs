//! Frames over sockets: what the bytes look like, and the two ends of every exchange.
//!
//! A stream socket (Unix stream, TCP) keeps no message boundaries: one `write` may arrive as
//! several `read`s, several writes as one read, and a `write` may take only part of a buffer.
//! So every message here is a *frame* that says how long it is:
//!
//! ```text
//! | payload length: u32 | CRC-32 of the payload: u32 | sequence number: u64 | payload … |
//! ```
//!
//! [`Stream`] reads exactly one frame however the bytes arrive, and tells a clean end (EOF
//! between frames) from a peer that left mid-frame. A datagram socket keeps boundaries, so
//! [`Datagram`] sends and receives one frame per system call, and the receiver checks that the
//! length it got is the length the frame announces. [`serve`] is the far side of every exchange
//! (an echo, or a sink that only checks); [`Pinger`] and [`send_frames`] with [`end_stream`]
//! are the near side.
//!
//! Nothing here knows about measurement or reports; it can be lifted out on its own.

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixDatagram, UnixStream};

/// Bytes of a frame's header: length, checksum, sequence number.
pub const HEADER: usize = 16;

/// Writes message number `seq` into `frame` (header and payload): a payload pattern that
/// depends on `seq`, then the header.
pub fn fill(frame: &mut [u8], seq: u64) {
    let (head, payload) = frame.split_at_mut(HEADER);
    let seed = seq as u8;
    for (i, b) in payload.iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
    head[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    head[4..8].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    head[8..].copy_from_slice(&seq.to_le_bytes());
}

/// Renumbers a filled frame, leaving its payload (and checksum) as it is: a stream of large
/// frames costs one payload and one checksum in all, not one per frame.
pub fn renumber(frame: &mut [u8], seq: u64) {
    frame[8..HEADER].copy_from_slice(&seq.to_le_bytes());
}

/// The payload length a frame's header announces.
fn announced_len(head: &[u8]) -> usize {
    u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize
}

/// The sequence number in a frame's header.
pub fn seq_of(frame: &[u8]) -> u64 {
    u64::from_le_bytes(frame[8..HEADER].try_into().expect("8 bytes"))
}

/// Checks that `frame` is one whole, intact frame numbered `seq`.
pub fn check(frame: &[u8], seq: u64) -> io::Result<()> {
    if frame.len() < HEADER {
        return Err(invalid(format!(
            "a frame of {} bytes is shorter than its header",
            frame.len()
        )));
    }
    let len = announced_len(frame);
    if len != frame.len() - HEADER {
        return Err(invalid(format!(
            "frame {} announces {len} payload bytes but {} arrived",
            seq_of(frame),
            frame.len() - HEADER
        )));
    }
    if seq_of(frame) != seq {
        return Err(invalid(format!(
            "expected frame {seq}, got frame {}",
            seq_of(frame)
        )));
    }
    let crc = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
    if crc32fast::hash(&frame[HEADER..]) != crc {
        return Err(invalid(format!("frame {seq} fails its checksum")));
    }
    Ok(())
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// One end of a connection that carries frames.
pub trait Wire: Send {
    /// Sends one whole frame.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;

    /// Receives one frame into the start of `buf`; `Ok(None)` when the other side has said it
    /// is done. A frame larger than `buf` is an error.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// Tells the other side that nothing more will be sent.
    fn end(&mut self) -> io::Result<()>;
}

/// A connected stream socket, read and written.
pub trait Duplex: Read + Write + Send + Sized {
    /// `shutdown(SHUT_WR)`: the peer reads EOF once it has read everything sent before.
    fn shutdown_write(&self) -> io::Result<()>;
}

impl Duplex for UnixStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Duplex for TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// Frames over a stream socket. Reads go through a buffer, so a small frame usually costs one
/// `read`, however its header and payload are split; writes go straight to the socket (one
/// descriptor a connection: a server holding 10,000 needs no more).
pub struct Stream<S: Duplex> {
    rx: BufReader<S>,
}

impl<S: Duplex> Stream<S> {
    /// Wraps a connected stream socket.
    pub fn new(socket: S) -> io::Result<Self> {
        Ok(Stream {
            rx: BufReader::with_capacity(64 * 1024, socket),
        })
    }

    /// The socket, to write to: what the buffer holds is only what was read.
    fn tx(&mut self) -> &mut S {
        self.rx.get_mut()
    }
}

/// Reads until `buf` is full or EOF; returns how many bytes it got. A stream delivers bytes in
/// whatever pieces it likes: this is the loop every reader of a stream needs.
fn read_full(rx: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match rx.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The whole length of the frame whose header starts `buf`: an error if it would not fit in
/// `buf` (a frame larger than those expected).
pub fn frame_len(buf: &[u8]) -> io::Result<usize> {
    let total = HEADER + announced_len(buf);
    if total > buf.len() {
        return Err(invalid(format!(
            "a frame of {total} bytes is larger than the {} expected",
            buf.len()
        )));
    }
    Ok(total)
}

/// The error for a peer that left inside a frame: `got` of `wanted` bytes arrived.
pub fn mid_frame(got: usize, wanted: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the peer left mid-frame, after {got} of {wanted} bytes"),
    )
}

impl<S: Duplex> Wire for Stream<S> {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // `write_all` repeats `write` until every byte is taken: a write may take only part.
        self.tx().write_all(frame)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let got = read_full(&mut self.rx, &mut buf[..HEADER])?;
        if got == 0 {
            return Ok(None); // EOF between frames: the peer is done.
        }
        if got < HEADER {
            return Err(mid_frame(got, HEADER));
        }
        let total = frame_len(buf)?;
        let body = read_full(&mut self.rx, &mut buf[HEADER..total])?;
        if HEADER + body < total {
            return Err(mid_frame(HEADER + body, total));
        }
        Ok(Some(total))
    }

    fn end(&mut self) -> io::Result<()> {
        self.tx().flush()?;
        self.tx().shutdown_write()
    }
}

/// Frames over a connected datagram socket: one frame, one datagram. A datagram socket has no
/// EOF, so an empty datagram says "done", and a side that may outlive its peer is given
/// `keep_waiting`, asked whenever a receive has waited for `poll_every` (set with
/// `set_read_timeout`) without a datagram.
pub struct Datagram {
    socket: UnixDatagram,
    keep_waiting: Box<dyn FnMut() -> bool + Send>,
}

impl Datagram {
    /// Wraps a connected datagram socket whose peer can be trusted to answer or to close.
    pub fn new(socket: UnixDatagram) -> Self {
        Datagram {
            socket,
            keep_waiting: Box::new(|| true),
        }
    }

    /// Wraps a connected datagram socket; a receive that waits `poll_every` asks `keep_waiting`
    /// whether to go on (say no when the peer has died).
    pub fn watched(
        socket: UnixDatagram,
        poll_every: std::time::Duration,
        keep_waiting: impl FnMut() -> bool + Send + 'static,
    ) -> io::Result<Self> {
        socket.set_read_timeout(Some(poll_every))?;
        Ok(Datagram {
            socket,
            keep_waiting: Box::new(keep_waiting),
        })
    }
}

impl Wire for Datagram {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // A datagram is sent whole or not at all.
        let n = self.socket.send(frame)?;
        if n != frame.len() {
            return Err(invalid(format!(
                "sent {n} of a {}-byte datagram",
                frame.len()
            )));
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.socket.recv(buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some(n)),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    if !(self.keep_waiting)() {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "the peer is gone (a datagram socket has no EOF to say so)",
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn end(&mut self) -> io::Result<()> {
        self.send(&[])
    }
}

/// A frame with no payload whose sequence number is `count`: the far side's receipt.
pub fn receipt(count: u64) -> [u8; HEADER] {
    let mut frame = [0u8; HEADER];
    fill(&mut frame, count);
    frame
}

/// The far side of an exchange: checks every frame (numbered from 0, whole, intact, at most
/// `max_frame` bytes), echoes it back if `echo`, and when the near side is done answers with a
/// receipt carrying the count. Returns the count.
pub fn serve(wire: &mut dyn Wire, echo: bool, max_frame: usize) -> io::Result<u64> {
    let mut count = 0;
    serve_counting(wire, echo, max_frame, &mut count)?;
    Ok(count)
}

/// [`serve`], keeping the count in `count` so that it is known even when the exchange breaks.
pub fn serve_counting(
    wire: &mut dyn Wire,
    echo: bool,
    max_frame: usize,
    count: &mut u64,
) -> io::Result<()> {
    // Sized to the frames expected: a buffer is touched, so resident, from its first use.
    let mut buf = vec![0u8; max_frame.max(HEADER)];
    while let Some(n) = wire.recv(&mut buf)? {
        if !echo && n == HEADER {
            // An empty frame in a one-way stream asks for a receipt so far; see [`receipt_so_far`].
            wire.send(&receipt(*count))?;
            continue;
        }
        check(&buf[..n], *count)?;
        if echo {
            wire.send(&buf[..n])?;
        }
        *count += 1;
    }
    wire.send(&receipt(*count))
}

/// Receives the far side's receipt and checks that it counts `sent` frames.
fn expect_receipt(wire: &mut dyn Wire, sent: u64) -> io::Result<u64> {
    let mut frame = [0u8; HEADER];
    match wire.recv(&mut frame)? {
        Some(HEADER) if announced_len(&frame) == 0 => {}
        _ => return Err(invalid("no receipt from the far side".to_owned())),
    }
    let counted = seq_of(&frame);
    if counted != sent {
        return Err(invalid(format!(
            "the far side counted {counted} frames, we sent {sent}"
        )));
    }
    Ok(counted)
}

/// In a one-way stream that goes on: asks the far side how many frames it has checked, which
/// must be `sent`. (The stream's frames all have a payload; an empty one is this question.)
pub fn receipt_so_far(wire: &mut dyn Wire, sent: u64) -> io::Result<u64> {
    wire.send(&receipt(0))?;
    expect_receipt(wire, sent)
}

/// Ends an exchange from the near side: says "done" and checks that the far side's receipt
/// counts `sent` frames.
pub fn end_stream(wire: &mut dyn Wire, sent: u64) -> io::Result<u64> {
    wire.end()?;
    expect_receipt(wire, sent)
}

/// The near side of a ping-pong: sends a frame, waits for the same frame back.
pub struct Pinger {
    wire: Box<dyn Wire>,
    sent: Vec<u8>,
    back: Vec<u8>,
    seq: u64,
}

impl Pinger {
    /// Frames of `bytes` bytes in all, header included (at least [`HEADER`]).
    pub fn new(wire: Box<dyn Wire>, bytes: usize) -> Self {
        Pinger {
            wire,
            sent: vec![0; bytes],
            back: vec![0; bytes],
            seq: 0,
        }
    }

    /// One round trip, checked: the echo must be the very bytes sent.
    pub fn round_trip(&mut self) -> io::Result<()> {
        fill(&mut self.sent, self.seq);
        self.wire.send(&self.sent)?;
        let n = self
            .wire
            .recv(&mut self.back)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the echo side hung up"))?;
        if self.back[..n] != self.sent[..] {
            check(&self.back[..n], self.seq)?;
            return Err(invalid(format!("frame {} came back changed", self.seq)));
        }
        self.seq += 1;
        Ok(())
    }

    /// Says "done" and checks that the echo side counted every frame.
    pub fn finish(mut self) -> io::Result<u64> {
        end_stream(&mut *self.wire, self.seq)
    }
}

/// Sends `count` frames (`frame` filled already, renumbered from `first`) one way; asks
/// `keep_going` every 16 frames so a long stream stops promptly on Ctrl-C.
pub fn send_frames(
    wire: &mut dyn Wire,
    frame: &mut [u8],
    first: u64,
    count: u64,
    keep_going: impl Fn() -> bool,
) -> io::Result<()> {
    for seq in first..first + count {
        if seq.is_multiple_of(16) && !keep_going() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the stream was stopped",
            ));
        }
        renumber(frame, seq);
        wire.send(frame)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_catches_loss_corruption_and_truncation() {
        let mut f = vec![0; 100];
        fill(&mut f, 7);
        assert!(check(&f, 7).is_ok());
        assert!(
            check(&f, 8)
                .unwrap_err()
                .to_string()
                .contains("expected frame 8")
        );
        assert!(
            check(&f[..99], 7)
                .unwrap_err()
                .to_string()
                .contains("announces 84")
        );
        f[50] ^= 1;
        assert!(check(&f, 7).unwrap_err().to_string().contains("checksum"));
    }

    #[test]
    fn a_ping_pong_over_a_unix_stream_counts_every_frame() {
        let (a, b) = UnixStream::pair().unwrap();
        let far = std::thread::spawn(move || serve(&mut Stream::new(b).unwrap(), true, 100));
        let mut p = Pinger::new(Box::new(Stream::new(a).unwrap()), 100);
        for _ in 0..50 {
            p.round_trip().unwrap();
        }
        assert_eq!(p.finish().unwrap(), 50);
        assert_eq!(far.join().unwrap().unwrap(), 50);
    }

    #[test]
    fn a_stream_over_datagrams_arrives_whole() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let far = std::thread::spawn(move || serve(&mut Datagram::new(b), false, 4096));
        let mut near = Datagram::new(a);
        let mut frame = vec![0; 4096];
        fill(&mut frame, 0);
        send_frames(&mut near, &mut frame, 0, 30, || true).unwrap();
        assert_eq!(end_stream(&mut near, 30).unwrap(), 30);
        assert_eq!(far.join().unwrap().unwrap(), 30);
    }

    #[test]
    fn a_peer_leaving_mid_frame_is_told_apart_from_a_clean_end() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut f = vec![0; 100];
        fill(&mut f, 0);
        b.write_all(&f[..40]).unwrap();
        drop(b);
        let mut s = Stream::new(a).unwrap();
        let mut buf = vec![0; 200];
        let err = s.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("after 40 of 100 bytes"), "{err}");
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert!(Stream::new(a).unwrap().recv(&mut buf).unwrap().is_none());
    }

    #[test]
    fn a_watched_datagram_gives_up_when_told() {
        let (a, _b) = UnixDatagram::pair().unwrap();
        let mut d = Datagram::watched(a, std::time::Duration::from_millis(5), || false).unwrap();
        let err = d.recv(&mut [0u8; 64]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }
}
