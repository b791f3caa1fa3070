//! The pool models' worker: one process (prefork) or one thread (thread-pool) serving many
//! connections at once with `epoll`, as nginx's workers do. Every worker waits on the one
//! listening socket (`EPOLLEXCLUSIVE`: a new connection wakes one waiting worker, not all),
//! on the stop pipe, and on the connections it accepted; it never blocks on any one of them.
//! The two pool models run this same code: they differ only in what a worker is.
//!
//! A connection is an [`Echo`]: the frame being read, then the echo being written. A read or a
//! write that would block returns to the loop, which waits for that connection to be readable,
//! or writable, again.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::server::{ConnStats, Model, end_connection};
use crate::wire::{self, HEADER};

/// Tokens of the two descriptors every worker waits on; a connection's is its slot plus 2.
const LISTENER: u64 = 0;
const STOP: u64 = 1;

/// What a connection waits for next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
    /// Served: the client is done and has its receipt.
    Done,
}

/// One connection served without blocking: the frame coming in, or the bytes going out (its
/// echo, or the receipt at the end) in the same buffer.
struct Echo {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of the incoming frame read so far.
    got: usize,
    /// The outgoing bytes, `buf[sent..out]`; nothing goes out when `sent == out`.
    sent: usize,
    out: usize,
    /// The receipt is going out: the connection ends once it is sent.
    closing: bool,
    waits: Want,
    record: ConnStats,
}

impl Echo {
    fn new(stream: TcpStream, max_frame: usize) -> io::Result<Echo> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        Ok(Echo {
            stream,
            buf: vec![0; max_frame.max(HEADER)],
            got: 0,
            sent: 0,
            out: 0,
            closing: false,
            waits: Want::Read,
            record: ConnStats::default(),
        })
    }

    /// Goes as far as the socket lets it: reads, checks and echoes frames until a read or a
    /// write would block; answers the client's end with the count of frames served.
    fn advance(&mut self) -> io::Result<Want> {
        loop {
            if self.sent < self.out {
                match self.stream.write(&self.buf[self.sent..self.out]) {
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Want::Write),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            if self.closing {
                return Ok(Want::Done);
            }
            // The frame's whole length once its header is in: read no further than that.
            let wanted = if self.got < HEADER {
                HEADER
            } else {
                wire::frame_len(&self.buf)?
            };
            if self.got == wanted && wanted >= HEADER {
                wire::check(&self.buf[..wanted], self.record.requests)?;
                self.record.requests += 1;
                (self.sent, self.out, self.got) = (0, wanted, 0);
                continue;
            }
            match self.stream.read(&mut self.buf[self.got..wanted]) {
                Ok(0) if self.got == 0 => {
                    // The client is done: its receipt says how many frames were served.
                    self.buf[..HEADER].copy_from_slice(&wire::receipt(self.record.requests));
                    (self.sent, self.out, self.closing) = (0, HEADER, true);
                }
                Ok(0) => return Err(wire::mid_frame(self.got, wanted)),
                Ok(n) => self.got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Want::Read),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The events a connection that waits for `want` is woken by.
fn interest(want: Want) -> EpollFlags {
    match want {
        Want::Write => EpollFlags::EPOLLOUT,
        Want::Read | Want::Done => EpollFlags::EPOLLIN,
    }
}

/// A worker's connections: a slot each, its epoll token the slot plus 2; the free slots.
struct Connections<'a> {
    epoll: &'a Epoll,
    slots: Vec<Option<Echo>>,
    free: Vec<usize>,
}

impl Connections<'_> {
    /// Connections being served.
    fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Takes on a connection just accepted; it waits to be readable. One that cannot be set up
    /// (non-blocking, watched) is ended at once with its record, and the worker carries on.
    fn admit(&mut self, stream: TcpStream, max_frame: usize, model: Model, stats: &File) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let event = EpollEvent::new(EpollFlags::EPOLLIN, slot as u64 + 2);
        let echo = Echo::new(stream, max_frame).and_then(|echo| {
            self.epoll
                .add(&echo.stream, event)
                .map(|()| echo)
                .map_err(Into::into)
        });
        match echo {
            Ok(echo) => self.slots[slot] = Some(echo),
            Err(e) => {
                end_connection(model, ConnStats::default(), Err(e), stats);
                self.free.push(slot);
            }
        }
    }

    /// Accepts one waiting connection: `false` if none was waiting (another worker took it).
    /// An error that leaves the listener usable (the client gave up first) is no error here.
    fn accept(
        &mut self,
        listener: &TcpListener,
        max_frame: usize,
        model: Model,
        stats: &File,
    ) -> io::Result<bool> {
        match listener.accept() {
            Ok((stream, _)) => {
                self.admit(stream, max_frame, model, stats);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Serves the connection in `slot` as far as its socket lets it; once it ends (served, or
    /// broken), writes its record to `stats` and frees the slot.
    fn serve(&mut self, slot: usize, model: Model, stats: &File) -> io::Result<()> {
        let Some(echo) = self.slots[slot].as_mut() else {
            return Ok(()); // Ended earlier in this batch of events.
        };
        let result = match echo.advance() {
            Ok(Want::Done) => Ok(()),
            Ok(want) => {
                if want != echo.waits {
                    echo.waits = want;
                    let mut again = EpollEvent::new(interest(want), slot as u64 + 2);
                    self.epoll.modify(&echo.stream, &mut again)?;
                }
                return Ok(());
            }
            Err(e) => Err(e),
        };
        let echo = self.slots[slot].take().expect("a live connection");
        self.epoll.delete(&echo.stream)?;
        end_connection(model, echo.record, result, stats);
        self.free.push(slot);
        Ok(())
    }
}

/// A worker's loop: accepts on `listener`, serves every connection it accepted, and when `stop`
/// reads EOF accepts no more and returns once its connections are served.
pub fn worker(
    model: Model,
    listener: &TcpListener,
    stop: &OwnedFd,
    max_frame: usize,
    stats: &File,
) -> io::Result<()> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let accepting = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
    epoll.add(listener, EpollEvent::new(accepting, LISTENER))?;
    epoll.add(stop, EpollEvent::new(EpollFlags::EPOLLIN, STOP))?;
    let mut connections = Connections {
        epoll: &epoll,
        slots: Vec::new(),
        free: Vec::new(),
    };
    let mut events = vec![EpollEvent::empty(); 256];
    let mut stopping = false;
    while !stopping || connections.live() > 0 {
        let n = match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut stop_seen = false;
        for event in &events[..n] {
            match event.data() {
                STOP => stop_seen = true,
                // One connection a wake-up: another worker may be woken for the next. An error
                // such as EMFILE ends the worker (and the run, naming the limit).
                LISTENER => {
                    connections.accept(listener, max_frame, model, stats)?;
                }
                token => connections.serve(token as usize - 2, model, stats)?,
            }
        }
        if stop_seen && !stopping {
            // Connections already waiting are still taken, as the other models take them.
            stopping = true;
            epoll.delete(stop)?;
            while connections.accept(listener, max_frame, model, stats)? {}
            epoll.delete(listener)?;
        }
    }
    Ok(())
}
