//! The crowd: a client process that holds many connections to the server at once and drives
//! them all from one thread with `epoll` (this binary in the role `crowd`; the parent's side is
//! in [`crate::sweep`]).
//!
//! 1. **Connect.** `--connections` connections, made in batches small enough for the
//!    listener's backlog (a full backlog drops a connect for a second); each connection's first
//!    request, echoed, shows the server has accepted it. The time this takes is the time to get
//!    every connection accepted.
//! 2. **Requests.** `--per-connection` requests on every connection, `--in-flight` at a time:
//!    lane `l` of the in-flight ones visits connections `l`, `l + in_flight`, … in turn, so every
//!    connection is served in each round. Each request's round trip is timed.
//! 3. **End.** Each connection says "done" and checks the server's receipt: the count of its
//!    requests.
//!
//! Between the steps the crowd writes a byte to its parent and waits for one back, so that
//! the parent can read the server's memory and CPU time while every connection is held. Then
//! it writes what it measured (see [`Outcome`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::child::HANG_GUARD;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::wire::{self, HEADER};

/// Connections made before their first requests confirm the server accepted them: well within
/// the listener's backlog (128 for std's listeners, and `net.core.somaxconn` caps any).
pub const CONNECT_BATCH: usize = 64;

/// What the crowd tells its parent at the end, as little-endian `u64`s: the time to connect,
/// the time of the timed requests, the requests the server confirmed, then each round trip
/// (ns).
pub struct Outcome {
    pub connect: Duration,
    pub timed: Duration,
    pub confirmed: u64,
    pub round_trips: Vec<u64>,
}

impl Outcome {
    fn encode(&self) -> Vec<u8> {
        let head = [
            self.connect.as_nanos() as u64,
            self.timed.as_nanos() as u64,
            self.confirmed,
        ];
        head.iter()
            .chain(&self.round_trips)
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    /// Reads what [`run`] wrote; an error if it is cut short.
    pub fn decode(bytes: &[u8]) -> Result<Outcome> {
        if bytes.len() < 24 || !bytes.len().is_multiple_of(8) {
            bail!("the crowd's report is cut short ({} bytes)", bytes.len());
        }
        let mut values = bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        let mut next = || values.next().expect("checked length");
        let (connect, timed, confirmed) = (next(), next(), next());
        Ok(Outcome {
            connect: Duration::from_nanos(connect),
            timed: Duration::from_nanos(timed),
            confirmed,
            round_trips: values.collect(),
        })
    }
}

/// What the crowd is asked to do.
pub struct Ask {
    pub port: u16,
    pub connections: usize,
    pub in_flight: usize,
    pub per_connection: u64,
    pub bytes: usize,
}

/// One connection: its socket and the number of its next request.
struct Conn {
    stream: TcpStream,
    seq: u64,
}

/// A request in flight: the connection it is on, the frame sent, the echo so far, when it left.
struct Lane {
    conn: usize,
    sent: Vec<u8>,
    back: Vec<u8>,
    got: usize,
    since: Instant,
}

/// The crowd's side: connects, drives the requests, ends every connection; writes its
/// [`Outcome`] to `report`, pausing at `report`/`go` between the steps.
pub fn run(ask: &Ask, mut report: File, mut go: File) -> Result<()> {
    labkit::limits::raise_nofile().context("setrlimit(RLIMIT_NOFILE)")?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("epoll_create1")?;
    let mut conns = Vec::with_capacity(ask.connections);
    let mut lanes: Vec<Lane> = (0..ask.in_flight.min(ask.connections).max(CONNECT_BATCH))
        .map(|_| Lane {
            conn: 0,
            sent: vec![0; ask.bytes],
            back: vec![0; ask.bytes],
            got: 0,
            since: Instant::now(),
        })
        .collect();
    let start = Instant::now();
    while conns.len() < ask.connections {
        let first = conns.len();
        let batch = CONNECT_BATCH.min(ask.connections - first);
        for i in first..first + batch {
            let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, ask.port))
                .with_context(|| format!("connect #{i} to the server"))?;
            stream.set_nodelay(true).context("TCP_NODELAY")?;
            stream.set_nonblocking(true).context("O_NONBLOCK")?;
            epoll
                .add(&stream, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
                .context("epoll_ctl(ADD)")?;
            conns.push(Conn { stream, seq: 0 });
        }
        // Lane `k` takes connection `first + k` for its first request, and is then done.
        let mut drive = Drive::new(&epoll, &mut conns, &mut lanes[..batch], None);
        drive.run(|_, _| None, |k| first + k)?;
    }
    let connect = start.elapsed();
    pause(&mut report, &mut go)?;

    let lanes_used = ask.in_flight.min(ask.connections);
    let total = ask.connections as u64 * ask.per_connection;
    let mut round_trips = Vec::with_capacity(total as usize);
    let start = Instant::now();
    if ask.per_connection > 0 {
        let (n, rounds) = (ask.connections, ask.per_connection);
        let mut drive = Drive::new(
            &epoll,
            &mut conns,
            &mut lanes[..lanes_used],
            Some(&mut round_trips),
        );
        // Lane `l` visits `l`, `l + lanes`, … and round again, `rounds` times in all.
        drive.run(
            |lane, visit| {
                let per_round = (n - lane).div_ceil(lanes_used) as u64;
                (visit + 1 < per_round * rounds)
                    .then(|| lane + ((visit + 1) % per_round) as usize * lanes_used)
            },
            |lane| lane,
        )?;
    }
    let timed = start.elapsed();
    pause(&mut report, &mut go)?;

    let confirmed = end_all(&mut conns)?;
    let outcome = Outcome {
        connect,
        timed,
        confirmed,
        round_trips,
    };
    report
        .write_all(&outcome.encode())
        .context("write the crowd's report")
}

/// Tells the parent a step is done, and waits for its go-ahead.
fn pause(report: &mut File, go: &mut File) -> Result<()> {
    report.write_all(b".").context("write to the parent")?;
    let mut byte = [0u8; 1];
    go.read_exact(&mut byte)
        .context("wait for the parent's go-ahead")
}

/// The requests of one step: every lane has one request in flight at a time.
struct Drive<'a> {
    epoll: &'a Epoll,
    conns: &'a mut [Conn],
    lanes: &'a mut [Lane],
    /// The lane each connection's request belongs to, while one is in flight.
    lane_of: Vec<Option<usize>>,
    round_trips: Option<&'a mut Vec<u64>>,
}

impl<'a> Drive<'a> {
    fn new(
        epoll: &'a Epoll,
        conns: &'a mut [Conn],
        lanes: &'a mut [Lane],
        round_trips: Option<&'a mut Vec<u64>>,
    ) -> Drive<'a> {
        let lane_of = vec![None; conns.len()];
        Drive {
            epoll,
            conns,
            lanes,
            lane_of,
            round_trips,
        }
    }

    /// Starts every lane on `first(lane)`; each echo that comes back whole sends the lane on to
    /// `next(lane, visits so far)`, until every lane has none left.
    fn run(
        &mut self,
        next: impl Fn(usize, u64) -> Option<usize>,
        first: impl Fn(usize) -> usize,
    ) -> Result<()> {
        let mut busy = self.lanes.len();
        let mut visits = vec![0u64; busy];
        for lane in 0..busy {
            self.send(lane, first(lane))?;
        }
        let mut events = vec![EpollEvent::empty(); 256];
        let guard = PollTimeout::try_from(HANG_GUARD).unwrap_or(PollTimeout::MAX);
        while busy > 0 {
            let n = match self.epoll.wait(&mut events, guard) {
                Ok(0) => bail!(
                    "no answer from the server within the {} s hang guard",
                    HANG_GUARD.as_secs()
                ),
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            };
            for event in &events[..n] {
                let conn = event.data() as usize;
                let Some(lane) = self.receive(conn)? else {
                    continue;
                };
                visits[lane] += 1;
                match next(lane, visits[lane] - 1) {
                    Some(c) => self.send(lane, c)?,
                    None => busy -= 1,
                }
            }
        }
        Ok(())
    }

    /// Sends `conn`'s next request from `lane`.
    fn send(&mut self, lane: usize, conn: usize) -> Result<()> {
        let (l, c) = (&mut self.lanes[lane], &mut self.conns[conn]);
        wire::fill(&mut l.sent, c.seq);
        (l.conn, l.got) = (conn, 0);
        self.lane_of[conn] = Some(lane);
        l.since = Instant::now();
        write_all(&c.stream, &l.sent).with_context(|| format!("send on connection #{conn}"))
    }

    /// Reads what `conn` has; returns the lane whose echo is now whole and checked.
    fn receive(&mut self, conn: usize) -> Result<Option<usize>> {
        let Some(lane) = self.lane_of[conn] else {
            bail!(
                "the server closed connection #{conn}, or wrote on it, with no request in flight"
            );
        };
        let (l, c) = (&mut self.lanes[lane], &mut self.conns[conn]);
        match (&c.stream).read(&mut l.back[l.got..]) {
            Ok(0) => bail!(
                "the server closed connection #{conn} mid-request ({} of {} bytes back)",
                l.got,
                l.back.len()
            ),
            Ok(n) => l.got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).with_context(|| format!("read connection #{conn}")),
        }
        if l.got < l.back.len() {
            return Ok(None);
        }
        let took = l.since.elapsed().as_nanos() as u64;
        if l.back != l.sent {
            wire::check(&l.back, c.seq).with_context(|| format!("connection #{conn}"))?;
            bail!("connection #{conn}: frame {} came back changed", c.seq);
        }
        c.seq += 1;
        self.lane_of[conn] = None;
        if let Some(r) = self.round_trips.as_deref_mut() {
            r.push(took);
        }
        Ok(Some(lane))
    }
}

/// Writes all of `bytes` to a non-blocking socket, waiting while its buffer is full.
fn write_all(mut stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut fd = [PollFd::new(stream.as_fd(), PollFlags::POLLOUT)];
                let guard = PollTimeout::try_from(HANG_GUARD).unwrap_or(PollTimeout::MAX);
                if poll(&mut fd, guard)? == 0 {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Says "done" on every connection, then checks each receipt: the server's count of that
/// connection's requests. Returns the requests confirmed.
fn end_all(conns: &mut [Conn]) -> Result<u64> {
    for (i, c) in conns.iter().enumerate() {
        c.stream
            .shutdown(Shutdown::Write)
            .with_context(|| format!("shutdown connection #{i}"))?;
    }
    let mut confirmed = 0;
    for (i, c) in conns.iter_mut().enumerate() {
        c.stream.set_nonblocking(false)?;
        c.stream.set_read_timeout(Some(HANG_GUARD))?;
        let mut receipt = [0u8; HEADER];
        c.stream
            .read_exact(&mut receipt)
            .with_context(|| format!("the receipt of connection #{i}"))?;
        wire::check(&receipt, c.seq).with_context(|| format!("the receipt of connection #{i}"))?;
        confirmed += c.seq;
    }
    Ok(confirmed)
}
