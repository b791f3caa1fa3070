//! A small echo server under load, built the four classic ways: a unit of work created per
//! connection, or a pool created once, each with processes or with threads.
//!
//! * **fork-per-connection**: the server accepts, `fork`s, and the child serves that one
//!   connection then exits; the server reaps it. Each connection gets its own address space.
//! * **thread-per-connection**: the server accepts and spawns a thread for the connection.
//! * **prefork**: a fixed set of processes, forked once, each accepting on the one listening
//!   socket and serving its connections at once with `epoll` (nginx's workers).
//! * **thread-pool**: a fixed set of threads, started once, running the very same loop as the
//!   prefork workers (see [`crate::multiplex`]): the pools differ only in what a worker is.
//!
//! Every request is a frame (see [`crate::wire`]) echoed back whole and checked at both ends.
//! The server stops accepting when its `stop` pipe reports EOF (its parent closed the write
//! end, or died), waits for the connections it is serving, and ends. For each connection it
//! writes a [`ConnStats`] record to its `stats` pipe, from whichever process or thread served
//! it: records of 24 bytes, below `PIPE_BUF`, so writers never interleave.
//!
//! A client that leaves in the middle of a request is logged on stderr and counted; the server
//! carries on with the others.
//!
//! `fork` here follows the rule for forking safely: the process that forks has one thread, so
//! the child may do anything its parent could. The caller checks that before serving.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use crate::multiplex;
use crate::wire::{self, HEADER, Pinger, Stream};

/// How the server gives each connection something to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    ForkPerConnection,
    ThreadPerConnection,
    Prefork {
        workers: usize,
    },
    ThreadPool {
        workers: usize,
    },
    /// An async task per connection on a runtime thread per CPU (`tasks.rs`).
    Async,
}

impl Model {
    /// The mechanism's name in the Report.
    pub fn name(self) -> &'static str {
        match self {
            Model::ForkPerConnection => "fork-per-connection",
            Model::ThreadPerConnection => "thread-per-connection",
            Model::Prefork { .. } => "prefork",
            Model::ThreadPool { .. } => "thread-pool",
            Model::Async => "async",
        }
    }

    /// The five models, in the order they run, pools of `workers`.
    pub fn all(workers: usize) -> [Model; 5] {
        [
            Model::ForkPerConnection,
            Model::ThreadPerConnection,
            Model::Prefork { workers },
            Model::ThreadPool { workers },
            Model::Async,
        ]
    }

    /// The size of a pool made before the load; `None` for a unit made per connection.
    pub fn workers(self) -> Option<usize> {
        match self {
            Model::Prefork { workers } | Model::ThreadPool { workers } => Some(workers),
            Model::ForkPerConnection | Model::ThreadPerConnection | Model::Async => None,
        }
    }
}

/// What one connection amounted to, as the server saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Requests served (checked and echoed).
    pub requests: u64,
    /// 1 if the client left in the middle of a request.
    pub left_mid_request: u64,
    /// 1 if the connection broke in another way (a corrupt frame, an error).
    pub failed: u64,
}

impl ConnStats {
    /// Bytes of one record on the stats pipe.
    pub const LEN: usize = 24;

    fn encode(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&self.requests.to_le_bytes());
        b[8..16].copy_from_slice(&self.left_mid_request.to_le_bytes());
        b[16..].copy_from_slice(&self.failed.to_le_bytes());
        b
    }

    /// Decodes the records read from a stats pipe and adds them up, with the connection count.
    pub fn total(records: &[u8]) -> (u64, ConnStats) {
        let mut sum = ConnStats::default();
        let mut connections = 0;
        for r in records.chunks_exact(Self::LEN) {
            let field = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().expect("8 bytes"));
            sum += ConnStats {
                requests: field(0),
                left_mid_request: field(8),
                failed: field(16),
            };
            connections += 1;
        }
        (connections, sum)
    }
}

impl std::ops::AddAssign for ConnStats {
    fn add_assign(&mut self, other: ConnStats) {
        self.requests += other.requests;
        self.left_mid_request += other.left_mid_request;
        self.failed += other.failed;
    }
}

/// How often (ms) a forking server with children reaps the finished ones while idle.
const REAP_EVERY_MS: u16 = 20;

/// Serves one connection: every request checked and echoed until the client is done; then
/// writes the connection's record to `stats`.
fn serve_connection(stream: TcpStream, model: Model, max_frame: usize, stats: &File) {
    let mut record = ConnStats::default();
    let result = stream
        .set_nodelay(true)
        .and_then(|()| Stream::new(stream))
        .and_then(|mut wire| {
            wire::serve_counting(&mut wire, true, max_frame, &mut record.requests)
        });
    end_connection(model, record, result, stats);
}

/// Ends a connection's service, whichever model served it: how it ended (a client that left
/// mid-request, or another failure, is logged on stderr and counted) goes into its `record`,
/// which is written to `stats`.
pub fn end_connection(model: Model, mut record: ConnStats, result: io::Result<()>, stats: &File) {
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            record.left_mid_request = 1;
            eprintln!(
                "sockets server [{}, pid {}]: a client left mid-request ({e}); serving the others",
                model.name(),
                std::process::id()
            );
        }
        Err(e) => {
            record.failed = 1;
            eprintln!(
                "sockets server [{}, pid {}]: a connection failed: {e}",
                model.name(),
                std::process::id()
            );
        }
    }
    // One write of 24 bytes to a pipe is atomic: records from many writers never mix.
    if let Err(e) = (&*stats).write_all(&record.encode()) {
        eprintln!("sockets server: cannot write to the stats pipe: {e}");
    }
}

/// What waiting on the listener and the stop pipe gave.
enum Next {
    Connection(TcpStream),
    /// The poll timed out, or another process took the connection first.
    Nothing,
    /// EOF on `stop`: accept no more.
    Stop,
}

/// Waits (up to `timeout`) for a connection on the non-blocking `listener` or the end of
/// `stop`. A connection already waiting is taken even when the stop came with it.
fn next_connection(
    listener: &TcpListener,
    stop: &OwnedFd,
    timeout: PollTimeout,
) -> io::Result<Next> {
    let mut fds = [
        PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        PollFd::new(stop.as_fd(), PollFlags::POLLIN),
    ];
    match poll(&mut fds, timeout) {
        Ok(0) | Err(Errno::EINTR) => return Ok(Next::Nothing),
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    let waiting = fds[0].any().unwrap_or(false);
    if !waiting && fds[1].any().unwrap_or(true) {
        return Ok(Next::Stop);
    }
    // An accepted socket does not inherit O_NONBLOCK from the listener on Linux.
    match listener.accept() {
        Ok((stream, _)) => Ok(Next::Connection(stream)),
        // The client gave up between poll and accept, or another worker took it.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Next::Nothing),
        Err(e) => Err(e),
    }
}

/// Runs the server, for requests of at most `max_frame` bytes, until `stop` reports EOF, then
/// waits for the connections in progress. Returns how many connections it accepted itself (a
/// prefork server's workers accept them: its records count them). For the models that fork,
/// the calling process must have no other thread.
pub fn run(
    model: Model,
    max_frame: usize,
    listener: TcpListener,
    stop: OwnedFd,
    stats: File,
) -> io::Result<u64> {
    if model == Model::Async {
        return crate::tasks::run(max_frame, listener, stop, stats);
    }
    listener.set_nonblocking(true)?;
    match model {
        Model::Prefork { workers } => {
            return prefork(workers, max_frame, listener, &stop, &stats).map(|()| 0);
        }
        Model::ThreadPool { workers } => {
            return thread_pool(workers, max_frame, &listener, &stop, &stats).map(|()| 0);
        }
        _ => {}
    }
    let stats = Arc::new(stats);
    let mut connections = 0;
    let mut children = 0u64;
    let mut threads = Vec::new();
    let mut sweep_at = 16;
    loop {
        // The fork model wakes now and then to reap children that have finished.
        let timeout = if children > 0 {
            PollTimeout::from(REAP_EVERY_MS)
        } else {
            PollTimeout::NONE
        };
        let stream = match next_connection(&listener, &stop, timeout)? {
            Next::Connection(stream) => stream,
            Next::Nothing => {
                children -= reap(false)?;
                continue;
            }
            Next::Stop => break,
        };
        connections += 1;
        match model {
            Model::ForkPerConnection => {
                fork_connection(stream, &listener, model, max_frame, &stats)?;
                children += 1;
                children -= reap(false)?;
            }
            Model::ThreadPerConnection => {
                let stats = Arc::clone(&stats);
                threads.push(
                    std::thread::Builder::new()
                        .name("connection".to_owned())
                        .spawn(move || serve_connection(stream, model, max_frame, &stats))?,
                );
                // Let go of the threads that have finished (and their stacks) each time the
                // list has doubled: O(1) per accept, at the cost of keeping up to as many
                // finished threads as there were live ones at the last sweep.
                if threads.len() >= sweep_at {
                    threads.retain(|t: &std::thread::JoinHandle<()>| !t.is_finished());
                    sweep_at = (2 * threads.len()).max(16);
                }
            }
            Model::Prefork { .. } | Model::ThreadPool { .. } | Model::Async => {
                unreachable!("served above")
            }
        }
    }
    drop(listener);
    // Wind down: every connection in progress is served to its end.
    while children > 0 {
        children -= reap(true)?;
    }
    for t in threads {
        t.join()
            .map_err(|_| io::Error::other("a connection thread panicked"))?;
    }
    Ok(connections)
}

/// The prefork server: forks `workers` processes that each accept on `listener` and serve their
/// connections (see [`crate::multiplex`]) until `stop` ends, then waits for them all.
fn prefork(
    workers: usize,
    max_frame: usize,
    listener: TcpListener,
    stop: &OwnedFd,
    stats: &File,
) -> io::Result<()> {
    let server = nix::unistd::getpid();
    let mut pids = Vec::new();
    for _ in 0..workers {
        // SAFETY: the caller guarantees this process has no other thread (the fork rule); the
        // child runs `accept_and_serve` and leaves with `_exit` (see `in_child`).
        match unsafe { fork() }.map_err(io::Error::from)? {
            ForkResult::Child => in_child(server, None, || {
                let model = Model::Prefork { workers };
                if let Err(e) = multiplex::worker(model, &listener, stop, max_frame, stats) {
                    eprintln!("sockets server [prefork, pid {}]: {e}", std::process::id());
                }
            }),
            ForkResult::Parent { child } => pids.push(child),
        }
    }
    drop(listener); // The workers accept; this process only waits for them.
    for _ in pids {
        reap(true)?;
    }
    Ok(())
}

/// The thread-pool server: `workers` threads, each running the prefork workers' loop on
/// `listener` until `stop` ends; returns once they all have.
fn thread_pool(
    workers: usize,
    max_frame: usize,
    listener: &TcpListener,
    stop: &OwnedFd,
    stats: &File,
) -> io::Result<()> {
    let model = Model::ThreadPool { workers };
    std::thread::scope(|s| {
        let threads = (0..workers)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn_scoped(s, move || {
                        let served = multiplex::worker(model, listener, stop, max_frame, stats);
                        // Said at once: the run may end (and kill this server) long before the
                        // other workers are joined.
                        if let Err(e) = &served {
                            eprintln!(
                                "sockets server [thread-pool, pid {}]: {e}",
                                std::process::id()
                            );
                        }
                        served
                    })
            })
            .collect::<Vec<_>>();
        let mut first_error = None;
        for thread in threads {
            let result = match thread {
                Ok(t) => t
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a worker panicked"))),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// The life of a forked child: it dies with the server, `server` (and leaves at once if the
/// server is already gone), closes `close` (a descriptor that is the server's business), runs `work`,
/// and ends with `_exit`, never returning into the server's code.
fn in_child(server: Pid, close: Option<&TcpListener>, work: impl FnOnce()) -> ! {
    // SAFETY: plain system calls on the child's own state.
    unsafe {
        if let Some(listener) = close {
            libc::close(listener.as_raw_fd());
        }
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    if nix::unistd::getppid() != server {
        // SAFETY: `_exit` ends the child without running the server's destructors or
        // flushing its stdio a second time.
        unsafe { libc::_exit(1) }
    }
    // A panic must not unwind into the server's loop in this copy of it.
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    // SAFETY: see above.
    unsafe { libc::_exit(if done.is_ok() { 0 } else { 101 }) }
}

/// Forks a child to serve `stream`; the parent's copy of the connection is closed on return.
fn fork_connection(
    stream: TcpStream,
    listener: &TcpListener,
    model: Model,
    max_frame: usize,
    stats: &File,
) -> io::Result<()> {
    let server = nix::unistd::getpid();
    // SAFETY: the caller guarantees this process has no other thread (the fork rule), so the
    // child gets a consistent copy of every lock and allocator state and may run any code. The
    // child never returns from this block: it ends with `_exit` (see `in_child`).
    match unsafe { fork() }.map_err(io::Error::from)? {
        // The child serves one connection; the listener is the server's business.
        ForkResult::Child => in_child(server, Some(listener), || {
            serve_connection(stream, model, max_frame, stats)
        }),
        ForkResult::Parent { .. } => Ok(()), // `stream` closes here: the child has its copy.
    }
}

/// Reaps ended children (waiting for one if `block`); returns how many were reaped. A child
/// that did not exit 0 is reported on stderr: its connection's record says what it saw.
fn reap(block: bool) -> io::Result<u64> {
    let mut reaped = 0;
    let flags = if block {
        None
    } else {
        Some(WaitPidFlag::WNOHANG)
    };
    loop {
        match waitpid(Pid::from_raw(-1), flags) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(reaped),
            Ok(WaitStatus::Exited(_, 0)) => reaped += 1,
            Ok(other) => {
                eprintln!(
                    "sockets server [pid {}]: the process serving a connection ended badly: \
                     {other:?}",
                    std::process::id()
                );
                reaped += 1;
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        if block {
            return Ok(reaped);
        }
    }
}

/// One client: `requests` requests of `bytes` bytes, on connections made one after another,
/// `per_connection` requests on each; every request timed into `record` and checked, and every
/// connection's count confirmed by the server. `keep_going` is asked before every request. A
/// read that waits `hang_guard` is an error, not a hang. Returns the requests confirmed.
pub fn client(
    addr: SocketAddr,
    requests: u64,
    per_connection: u64,
    bytes: usize,
    hang_guard: Duration,
    record: &mut dyn FnMut(Duration),
    keep_going: &dyn Fn() -> bool,
) -> io::Result<u64> {
    let mut done = 0;
    while done < requests {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(hang_guard))?;
        let mut pinger = Pinger::new(Box::new(Stream::new(stream)?), bytes);
        for _ in 0..per_connection.min(requests - done) {
            if !keep_going() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
            }
            let start = Instant::now();
            pinger.round_trip()?;
            record(start.elapsed());
        }
        done += pinger.finish()?;
    }
    Ok(done)
}

/// A rude client: sends the first half of a request and leaves.
pub fn leave_mid_request(addr: SocketAddr, bytes: usize) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    let mut frame = vec![0u8; bytes.max(HEADER + 2)];
    wire::fill(&mut frame, 0);
    stream.write_all(&frame[..frame.len() / 2])?;
    stream.flush()
}

/// Reads a stats pipe to its end: EOF once the server and every process it forked are gone.
/// Run it alongside the clients, or a full pipe would block the server's writes.
pub fn read_stats(mut pipe: File) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    pipe.read_to_end(&mut all)?;
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a server of `model` in a thread, `clients` clients against it, then stops it.
    fn exercise(model: Model) -> (u64, ConnStats) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_rx, stop_tx) = std::io::pipe().unwrap();
        let (stats_rx, stats_tx) = std::io::pipe().unwrap();
        let server = std::thread::spawn(move || {
            run(
                model,
                100,
                listener,
                OwnedFd::from(stop_rx),
                File::from(OwnedFd::from(stats_tx)),
            )
        });
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let n = client(
                        addr,
                        15,
                        5,
                        100,
                        Duration::from_secs(30),
                        &mut |_| {},
                        &|| true,
                    )
                    .unwrap();
                    assert_eq!(n, 15);
                });
            }
        });
        leave_mid_request(addr, 100).unwrap();
        drop(stop_tx);
        // A pool's workers accept, not the server: their records count the connections.
        let accepted = if model.workers().is_some() { 0 } else { 13 };
        assert_eq!(server.join().unwrap().unwrap(), accepted);
        let stats = read_stats(File::from(OwnedFd::from(stats_rx)));
        ConnStats::total(&stats.unwrap())
    }

    #[test]
    fn threaded_servers_serve_everyone_and_survive_a_rude_client() {
        for model in [Model::ThreadPerConnection, Model::ThreadPool { workers: 2 }] {
            let (connections, sum) = exercise(model);
            assert_eq!(connections, 13, "{model:?}");
            assert_eq!(
                sum,
                ConnStats {
                    requests: 60,
                    left_mid_request: 1,
                    failed: 0
                },
                "{model:?}"
            );
        }
    }
}
