//! The crowd: a client process that holds many connections to the server at once and drives
//! them all from one thread with `epoll` (this binary in the role `crowd`; the parent's side is
//! in [`crate::sweep`]).
//!
//! 1. **Connect.** `--connections` connections, made in batches small enough for the
//!    listener's backlog and `net.core.somaxconn` (a full backlog drops a connect for a
//!    second); each connection's first request, echoed, shows the server has accepted it. The
//!    time this takes is the time to get every connection accepted.
//! 2. **Requests.** `--per-connection` requests on every connection, `--in-flight` at a time:
//!    connections are visited in turn, `0, 1, … n-1` and round again, each visit by whichever
//!    of the in-flight lanes is free, so every connection is served in each round and the
//!    lanes stay busy to the end. Each request's round trip is timed.
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
/// the listener's backlog (128 for std's listeners), and within `net.core.somaxconn`, which
/// caps any backlog (a connect beyond it waits a second for its SYN to be sent again).
fn connect_batch() -> usize {
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn");
    let somaxconn = somaxconn.ok().and_then(|s| s.trim().parse::<usize>().ok());
    somaxconn.unwrap_or(64).clamp(1, 64)
}

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

/// A request in flight: the frame sent, the echo so far, when it left.
struct Lane {
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
    let batch_size = connect_batch();
    let mut lanes: Vec<Lane> = (0..ask.in_flight.min(ask.connections).max(batch_size))
        .map(|_| Lane {
            sent: vec![0; ask.bytes],
            back: vec![0; ask.bytes],
            got: 0,
            since: Instant::now(),
        })
        .collect();
    let start = Instant::now();
    while conns.len() < ask.connections {
        let first = conns.len();
        let batch = batch_size.min(ask.connections - first);
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
        // Each lane takes the batch's next connection for its first request, then is done.
        let mut drive = Drive::new(&epoll, &mut conns, &mut lanes[..batch], None);
        let mut next = first..first + batch;
        drive.run(|done, _| if done.is_some() { None } else { next.next() })?;
    }
    let connect = start.elapsed();
    pause(&mut report, &mut go)?;

    let lanes_used = ask.in_flight.min(ask.connections);
    let total = ask.connections as u64 * ask.per_connection;
    let mut round_trips = Vec::with_capacity(total as usize);
    let start = Instant::now();
    if ask.per_connection > 0 {
        let mut drive = Drive::new(
            &epoll,
            &mut conns,
            &mut lanes[..lanes_used],
            Some(&mut round_trips),
        );
        drive.run(round_robin(ask.connections, ask.per_connection))?;
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

/// The timed step's order: connections `0, 1, … n-1`, `rounds` times over, each visit sent by
/// whichever lane is free, so that every lane stays busy to the end. A connection whose turn
/// comes while its previous request is still in flight is owed a visit, which the lane that
/// completes that request makes next.
fn round_robin(
    n: usize,
    rounds: u64,
) -> impl FnMut(Option<usize>, &[Option<usize>]) -> Option<usize> {
    let total = n as u64 * rounds;
    let (mut visit, mut owed) = (0u64, vec![0u64; n]);
    move |done, lane_of| {
        if let Some(c) = done
            && owed[c] > 0
        {
            owed[c] -= 1;
            return Some(c);
        }
        while visit < total {
            let c = (visit % n as u64) as usize;
            visit += 1;
            if lane_of[c].is_none() {
                return Some(c);
            }
            owed[c] += 1;
        }
        None
    }
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

    /// Starts every lane on `next(None, …)`; each echo that comes back whole, on connection
    /// `c`, sends its lane on to `next(Some(c), …)`, until no lane has a connection left.
    /// `next` is also given which connections have a request in flight.
    fn run(
        &mut self,
        mut next: impl FnMut(Option<usize>, &[Option<usize>]) -> Option<usize>,
    ) -> Result<()> {
        let mut busy = 0;
        for lane in 0..self.lanes.len() {
            if let Some(c) = next(None, &self.lane_of) {
                self.send(lane, c)?;
                busy += 1;
            }
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
                match next(Some(conn), &self.lane_of) {
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
        l.got = 0;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Lanes completing in a scrambled order: every connection gets exactly its rounds, none
    /// while its request is in flight, and every lane stays busy until the visits run out.
    #[test]
    fn round_robin_serves_every_connection_its_rounds_with_the_lanes_full() {
        for (n, lanes, rounds) in [(10, 4, 3), (100, 64, 2), (5, 5, 7), (1, 1, 4), (64, 64, 1)] {
            let mut next = round_robin(n, rounds);
            let mut lane_of = vec![None; n];
            let mut in_flight: Vec<usize> = Vec::new();
            let mut visits = vec![0u64; n];
            for lane in 0..lanes {
                let c = next(None, &lane_of).unwrap();
                assert!(lane_of[c].is_none());
                (lane_of[c], visits[c]) = (Some(lane), visits[c] + 1);
                in_flight.push(c);
            }
            let mut step = 7usize;
            let mut done = 0u64;
            while !in_flight.is_empty() {
                step = (step * 31 + 11) % 1009;
                let c = in_flight.remove(step % in_flight.len());
                let lane = lane_of[c].take().unwrap();
                done += 1;
                let left = n as u64 * rounds - done - in_flight.len() as u64;
                match next(Some(c), &lane_of) {
                    Some(d) => {
                        assert!(lane_of[d].is_none(), "a visit to a busy connection");
                        (lane_of[d], visits[d]) = (Some(lane), visits[d] + 1);
                        in_flight.push(d);
                    }
                    None => assert!(left < lanes as u64, "a lane idled with {left} visits left"),
                }
            }
            assert!(
                visits.iter().all(|&v| v == rounds),
                "{n} {lanes} {rounds}: {visits:?}"
            );
        }
    }
}
