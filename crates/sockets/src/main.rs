//! # sockets: processes talk over sockets, threads can hand over memory; a server four ways
//!
//! **Claims** (from the seed, checked on this machine):
//! * `comm.process-needs-ipc`: processes have separate memory, so they need IPC (here,
//!   sockets) to communicate;
//! * `comm.threads-faster`: inter-thread communication is simpler and faster than IPC;
//! * `usecase.shared-data`: threads suit shared data and fast communication: an echo server
//!   built on a thread pool against the same server forking a process per connection.
//!
//! **Steps**
//! 1. [`ping_pong`]: a frame of `--bytes` (length, CRC-32, sequence number, payload) goes out
//!    and comes back over a Unix stream socketpair, a Unix stream socket at a path (in a fresh
//!    0700 directory), a Unix datagram socketpair and TCP on 127.0.0.1 with `TCP_NODELAY`:
//!    between two processes and between two threads, and over crossbeam channels between
//!    threads. Alternating blocks after a warm-up; both ends check every frame.
//! 2. [`stream`]: the same contenders send `--total` bytes one way in 64 KiB frames; the far
//!    end checks each frame's number and checksum and counts them.
//! 3. [`show_boundaries`]: three writes to a stream socket come out as one read, three
//!    datagrams as three; a large write to a non-blocking socket takes only part of the buffer.
//! 4. [`serve_under_load`]: an echo server on 127.0.0.1, in a process of its own, built four
//!    ways: a unit per connection (fork-per-connection, thread-per-connection) and a pool made
//!    before the load (prefork, thread-pool); `--clients` client
//!    threads each make `--requests` requests per block, `--per-connection` per connection.
//!    Requests per second, latency, CPU time per request (server, its children and the
//!    clients) and the peak memory of the server with its children; a client that leaves
//!    mid-request is logged by the server, which carries on.
//! 5. [`probe_child_memory`]: a child is handed the address of a fresh nonce in our memory;
//!    it reads its own memory there (`/proc/self/mem`) and finds no nonce, while the same
//!    nonce sent through a socketpair arrives.
//! 6. [`judge_claims`]: steps 1 and 2, block pair by block pair, decide `comm.threads-faster`
//!    once per placement (steps 1 and 2 run with both sides on one CPU, then on two; `--pin`
//!    narrows to one, `--pin none` is shown and not judged); step 4 decides
//!    `usecase.shared-data`, step 5 `comm.process-needs-ipc`.
//!
//! **Run it**: `cargo run --release -p sockets` (about two seconds), `-- --json` for the
//! Report, `-- --clients 32 --per-connection 1` for a server that mostly accepts.

mod boundaries;
mod channel;
mod server;
mod wire;

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use labkit::child::{Alive, Far, Peer, Watch, explain_break, liveness};
use labkit::exit::usage;
use labkit::measure::{block_sizes, cpu_ns_per_op, mib_per_s};
use labkit::names::PrivateDir;
use labkit::pin::{PinGuard, Placement};
use labkit::probe::{self, Nonce, PROBE_LEN, Probe};
use labkit::report::{format_bytes, format_ns, placement_text};
use labkit::signals::Shutdown;
use labkit::{
    Better, CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, PinArgs, Report, RoleArgs,
    Test, Variant, Verdict,
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::json;

use server::{ConnStats, Model};
use wire::{Datagram, HEADER, Stream, Wire};

/// Frame size for round trips by default (header included), and the limits of `--bytes`.
const BYTES: u64 = 100;
const MAX_BYTES: u64 = 64 * 1024;
/// Round trips per contender by default and with `--quick`, after a warm-up.
const MESSAGES: u64 = 4_000;
const QUICK_MESSAGES: u64 = 300;
const MAX_MESSAGES: u64 = 10_000_000;
const WARMUP: u64 = 200;
/// Bytes per stream block, and the frame size of streams.
const TOTAL: u64 = 32 << 20;
const QUICK_TOTAL: u64 = 1 << 20;
const MAX_TOTAL: u64 = 16 << 30;
const STREAM_FRAME: usize = 64 * 1024;
/// Buffers the channel contender keeps in flight in a stream.
const CHANNEL_BUFFERS: usize = 4;
/// Alternating blocks (6 reach a 95% interval in one run), and with `--quick` (fewer: the
/// verdicts then say their lower confidence).
const BLOCKS: u64 = 6;
const QUICK_BLOCKS: u64 = 3;
/// The server under load: clients, requests per client per block, requests per connection.
const CLIENTS: u64 = 8;
const MAX_CLIENTS: u64 = 256;
const REQUESTS: u64 = 200;
const QUICK_REQUESTS: u64 = 20;
const PER_CONNECTION: u64 = 20;
const QUICK_PER_CONNECTION: u64 = 5;
const MAX_REQUESTS: u64 = 1_000_000;
/// Untimed requests on one connection before each block's timing starts.
const WARMUP_REQUESTS: u64 = 5;
/// How often the server's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// How often a datagram receive asks whether its peer is still there.
const DGRAM_POLL: Duration = Duration::from_millis(100);
/// Waits that should end at once; reaching one means something is wrong, not slow.
const HANG_GUARD: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(
    about = "Unix stream, datagram and TCP sockets between processes vs threads, and an echo \
             server under load: fork-per-connection, thread-per-connection, prefork, thread-pool.",
    after_help = labkit::examples!(
        "",
        " -- --json | jq .claims",
        " -- --bytes 4096 --pin same",
        " -- --clients 32 --per-connection 1";
        "--pin places the round trips and streams; the server under load is left to the scheduler."
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    placing: PinArgs,

    /// Round trips per contender [default: 4000; --quick: 300; at most 10000000].
    #[arg(short = 'n', long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_MESSAGES))]
    messages: Option<u64>,

    /// Bytes per frame in round trips and requests, 16-byte header included [default: 100;
    /// from 16 to 64KiB].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(HEADER as u64, MAX_BYTES))]
    bytes: Option<u64>,

    /// Bytes per stream block, e.g. `256MiB` [default: 32MiB; --quick: 1MiB; from 1 to 16GiB].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_TOTAL))]
    total: Option<u64>,

    /// Concurrent clients of the server [default: 8; from 1 to 256].
    #[arg(long, value_name = "K", value_parser = labkit::cli::bounded(1, MAX_CLIENTS))]
    clients: Option<u64>,

    /// Requests per client per block [default: 200; --quick: 20; from 1 to 1000000].
    #[arg(long, value_name = "M", value_parser = labkit::cli::bounded(1, MAX_REQUESTS))]
    requests: Option<u64>,

    /// Requests per connection: a client reconnects after this many [default: 20; --quick: 5;
    /// from 1 to 1000000].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_REQUESTS))]
    per_connection: Option<u64>,

    /// Threads of the thread-pool server, and processes of the prefork one [default: the
    /// number of clients; from 1 to 256].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_CLIENTS))]
    workers: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,

    /// The transport a child's far side uses (internal).
    #[arg(long, hide = true, value_enum)]
    transport: Option<Mech>,

    /// The socket path a child connects to (internal).
    #[arg(long, hide = true)]
    path: Option<PathBuf>,

    /// The loopback TCP port a child connects to (internal).
    #[arg(long, hide = true)]
    port: Option<u16>,

    /// The server model of a `server` child (internal).
    #[arg(long, hide = true, value_enum)]
    model: Option<ModelArg>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.role.role.is_some() {
        return labkit::finish(concat!(env!("CARGO_PKG_NAME"), " (child)"), run_child(args));
    }
    labkit::finish(env!("CARGO_PKG_NAME"), run(args))
}

/// The sizes of this run, after defaults, and the placement of one round of steps 1 and 2.
#[derive(Clone)]
struct Plan {
    messages: u64,
    bytes: usize,
    total: u64,
    blocks: u64,
    clients: u64,
    requests: u64,
    per_connection: u64,
    workers: u64,
    placement: Placement,
    pin: labkit::Pin,
}

fn run(args: Args) -> Result<Outcome> {
    let shutdown = labkit::signals::install().context("install SIGINT/SIGTERM handlers")?;
    let common = &args.common;
    let quick = common.quick;
    let pick =
        |flag: Option<u64>, full: u64, small: u64| flag.unwrap_or(if quick { small } else { full });
    let messages = pick(args.messages, MESSAGES, QUICK_MESSAGES);
    let clients = args.clients.unwrap_or(CLIENTS);
    let plan = Plan {
        messages,
        bytes: args.bytes.unwrap_or(BYTES) as usize,
        total: pick(args.total, TOTAL, QUICK_TOTAL),
        blocks: pick(None, BLOCKS, QUICK_BLOCKS),
        clients,
        requests: pick(args.requests, REQUESTS, QUICK_REQUESTS),
        per_connection: pick(args.per_connection, PER_CONNECTION, QUICK_PER_CONNECTION),
        workers: args.workers.unwrap_or(clients),
        // Set per round below.
        placement: Placement::choose(labkit::Pin::None)?,
        pin: labkit::Pin::None,
    };
    let (placements, left_out) = Placement::each(args.placing.pin)?;
    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    report.param("messages", plan.messages);
    report.param("bytes", plan.bytes);
    report.param("total", plan.total);
    report.param("blocks", plan.blocks);
    report.param("clients", plan.clients);
    report.param("requests", plan.requests);
    report.param("per_connection", plan.per_connection);
    report.param("workers", plan.workers);
    report.param("pin", args.placing.pin.as_str());
    let described: Vec<String> = placements.iter().map(|(_, p)| p.describe()).collect();
    report.param("placement", described.join("; "));
    if let Some(why) = left_out {
        report.skip("round trips and streams on two CPUs", why);
    }

    let contenders: Vec<Contender> = CONTENDERS
        .into_iter()
        .filter(|c| common.wants(c.variant))
        .collect();
    let mut rounds = Vec::new();
    for (pin, placement) in placements {
        let at = Plan {
            pin,
            placement,
            ..plan.clone()
        };
        // The main thread is the near side of every exchange; the pin is undone after timing.
        let _pin = PinGuard::pin(placement.main).context("sched_setaffinity (main thread)")?;
        rounds.push((
            pin,
            ping_pong(&mut report, &contenders, &at, shutdown)?,
            stream(&mut report, &contenders, &at, shutdown)?,
        ));
    }
    show_boundaries(&mut report)?;
    let workers = plan.workers as usize;
    let models: Vec<Model> = [
        Model::ForkPerConnection,
        Model::ThreadPerConnection,
        Model::Prefork { workers },
        Model::ThreadPool { workers },
    ]
    .into_iter()
    .filter(|m| common.wants(model_variant(*m)))
    .collect();
    let load = serve_under_load(&mut report, &models, &plan, shutdown)?;
    let separate = if common.wants(Variant::Process) {
        Some(probe_child_memory()?)
    } else {
        None
    };
    common.note_one_side(&mut report);
    judge_claims(&mut report, &plan, &rounds, separate, &load);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    Ok(Outcome::of(&report))
}

/// The means of an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mech {
    /// `socketpair(AF_UNIX, SOCK_STREAM)`: connected at birth, shared by inheritance.
    Socketpair,
    /// A Unix stream socket bound to a path, found by name.
    UnixStream,
    /// `socketpair(AF_UNIX, SOCK_DGRAM)`: message boundaries kept.
    UnixDgram,
    /// TCP on 127.0.0.1 with `TCP_NODELAY`.
    Tcp,
    /// crossbeam channels: threads only.
    Channel,
}

impl Mech {
    fn name(self) -> &'static str {
        match self {
            Mech::Socketpair => "socketpair",
            Mech::UnixStream => "unix-stream",
            Mech::UnixDgram => "unix-dgram",
            Mech::Tcp => "tcp",
            Mech::Channel => "channel",
        }
    }
}

/// Who talks to whom, through what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Contender {
    variant: Variant,
    mech: Mech,
}

impl Contender {
    fn label(self) -> String {
        format!("{}/{}", self.variant.as_str(), self.mech.name())
    }
}

const CONTENDERS: [Contender; 9] = {
    const fn c(variant: Variant, mech: Mech) -> Contender {
        Contender { variant, mech }
    }
    use Mech::*;
    use Variant::{Process as P, Thread as T};
    [
        c(P, Socketpair),
        c(T, Socketpair),
        c(P, UnixStream),
        c(T, UnixStream),
        c(P, UnixDgram),
        c(T, UnixDgram),
        c(P, Tcp),
        c(T, Tcp),
        c(T, Channel),
    ]
};

/// Our end of an exchange.
enum Near {
    Wire(Box<dyn Wire>),
    Channel(channel::End),
}

/// Starts the far side of `c` in `role` (`echo` or `sink`): a child process or a thread, which
/// connects or inherits its end; returns our end once connected.
fn start(c: Contender, role: &str, plan: &Plan) -> Result<(Near, Far<u64>)> {
    let cpu = plan.placement.peer;
    if c.mech == Mech::Channel {
        let (near, far_end) = channel::pair(CHANNEL_BUFFERS);
        let far = Far::thread(role, cpu, move || channel::serve(far_end))?;
        return Ok((Near::Channel(near), far));
    }
    // The far side holds `alive` until it ends: a datagram socket has no EOF to tell us.
    let (alive, watch) = liveness().context("pipe (liveness)")?;
    let spawn = |alive, theirs, target| far_side(c, role, cpu, alive, theirs, target, plan.bytes);
    let (near, far) = match c.mech {
        Mech::Socketpair | Mech::UnixDgram => {
            let (ours, theirs): (OwnedFd, OwnedFd) = if c.mech == Mech::Socketpair {
                let (a, b) = UnixStream::pair().context("socketpair(SOCK_STREAM)")?;
                (a.into(), b.into())
            } else {
                let (a, b) = UnixDatagram::pair().context("socketpair(SOCK_DGRAM)")?;
                (a.into(), b.into())
            };
            let far = spawn(alive, Some(theirs), Target::Inherited)?;
            let near: Box<dyn Wire> = if c.mech == Mech::Socketpair {
                Box::new(Stream::new(UnixStream::from(ours)).context("dup")?)
            } else {
                let watch_far = watch;
                Box::new(
                    Datagram::watched(UnixDatagram::from(ours), DGRAM_POLL, move || {
                        !watch_far.is_gone(Duration::ZERO).unwrap_or(true)
                            && labkit::signals::requested().is_none()
                    })
                    .context("setsockopt(SO_RCVTIMEO)")?,
                )
            };
            (near, far)
        }
        Mech::UnixStream => {
            // The name lives in a fresh 0700 directory, and only until the far side connects.
            let dir = PrivateDir::create()?;
            let path = dir.path().join("echo.sock");
            let listener =
                UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
            let mut far = spawn(alive, None, Target::Path(path))?;
            wait_for_connection(listener.as_fd(), &watch, &mut far)?;
            let (stream, _) = listener.accept().context("accept (unix)")?;
            drop(dir); // Connected: the path has done its job; unlink it and its directory.
            (
                Box::new(Stream::new(stream).context("dup")?) as Box<dyn Wire>,
                far,
            )
        }
        Mech::Tcp => {
            let listener = loopback_listener()?;
            let port = listener.local_addr().context("getsockname")?.port();
            let mut far = spawn(alive, None, Target::Port(port))?;
            wait_for_connection(listener.as_fd(), &watch, &mut far)?;
            let (stream, _) = listener.accept().context("accept (tcp)")?;
            stream
                .set_nodelay(true)
                .context("setsockopt(TCP_NODELAY)")?;
            (
                Box::new(Stream::new(stream).context("dup")?) as Box<dyn Wire>,
                far,
            )
        }
        Mech::Channel => unreachable!("handled above"),
    };
    Ok((Near::Wire(near), far))
}

/// A TCP listener on 127.0.0.1 at a port the kernel picks: reachable from this machine only.
fn loopback_listener() -> Result<TcpListener> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    if !listener
        .local_addr()
        .context("getsockname")?
        .ip()
        .is_loopback()
    {
        bail!("the listener is not on the loopback interface");
    }
    Ok(listener)
}

/// Starts the far side: a child process (given `alive` and `theirs` by inheritance, `target`
/// and the frame size as flags) or a thread (given them by move), running [`far_work`].
fn far_side(
    c: Contender,
    role: &str,
    cpu: Option<usize>,
    alive: Alive,
    theirs: Option<OwnedFd>,
    target: Target,
    bytes: usize,
) -> Result<Far<u64>> {
    let echo = role == "echo";
    if c.variant == Variant::Process {
        let mut extra = vec![
            "--transport".to_owned(),
            c.mech.name().to_owned(),
            "--bytes".to_owned(),
            bytes.to_string(),
        ];
        match &target {
            Target::Inherited => {}
            Target::Path(p) => extra.extend(["--path".to_owned(), p.display().to_string()]),
            Target::Port(n) => extra.extend(["--port".to_owned(), n.to_string()]),
        }
        let mut fds: Vec<BorrowedFd<'_>> = vec![alive.as_fd()];
        fds.extend(theirs.as_ref().map(AsFd::as_fd));
        let peer = Peer::spawn(role, &fds, cpu, &extra)?;
        // Our copies of `alive` and `theirs` close here: the child holds the only ones.
        return Ok(Far::Process(peer));
    }
    let (mech, max) = (c.mech, max_frame(echo, bytes));
    Far::thread(role, cpu, move || {
        let _alive = alive; // Closed when this thread ends, however it ends.
        far_work(mech, echo, max, theirs, target)
    })
}

/// Where a far side connects: a socket path or a loopback port (a child gets it as flags).
#[derive(Clone, Debug)]
enum Target {
    Inherited,
    Path(PathBuf),
    Port(u16),
}

/// The largest frame a far side receives: a ping-pong's `--bytes`, or a stream's frame.
fn max_frame(echo: bool, bytes: usize) -> usize {
    if echo { bytes } else { STREAM_FRAME }
}

/// The far side's whole job, in a thread or a child: connect (or take the inherited socket),
/// then [`wire::serve`] until the near side is done.
fn far_work(
    mech: Mech,
    echo: bool,
    max_frame: usize,
    fd: Option<OwnedFd>,
    target: Target,
) -> io::Result<u64> {
    let missing = || io::Error::new(io::ErrorKind::InvalidInput, "no socket to serve on");
    let mut wire: Box<dyn Wire> = match (mech, target) {
        (Mech::Socketpair, _) => Box::new(Stream::new(UnixStream::from(fd.ok_or_else(missing)?))?),
        (Mech::UnixDgram, _) => {
            Box::new(Datagram::new(UnixDatagram::from(fd.ok_or_else(missing)?)))
        }
        (Mech::UnixStream, Target::Path(path)) => {
            Box::new(Stream::new(UnixStream::connect(path)?)?)
        }
        (Mech::Tcp, Target::Port(port)) => {
            let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
            stream.set_nodelay(true)?;
            Box::new(Stream::new(stream)?)
        }
        _ => return Err(missing()),
    };
    wire::serve(&mut *wire, echo, max_frame)
}

/// Waits until a connection is ready on `listener`, or the far side is gone, or the hang guard.
fn wait_for_connection(listener: BorrowedFd<'_>, watch: &Watch, far: &mut Far<u64>) -> Result<()> {
    let ms = u16::try_from(HANG_GUARD.as_millis()).unwrap_or(u16::MAX);
    loop {
        let shutdown_fd = labkit::signals::install()?;
        let mut fds = [
            PollFd::new(listener, PollFlags::POLLIN),
            PollFd::new(watch.as_fd(), PollFlags::POLLIN),
            PollFd::new(shutdown_fd.wake_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => bail!("hang guard: no connection after {} s", HANG_GUARD.as_secs()),
            Ok(_) if fds[0].any().unwrap_or(false) => return Ok(()),
            Ok(_) if fds[2].any().unwrap_or(false) => shutdown_fd.check()?,
            Ok(_) => {
                return Err(far.broke(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "it ended before connecting",
                )));
            }
            Err(nix::errno::Errno::EINTR) => {
                labkit::signals::requested().map_or(Ok(()), |s| Err(labkit::Interrupted(s)))?
            }
            Err(e) => return Err(e).context("poll (accept)"),
        }
    }
}

/// The near side of a ping-pong.
enum Pinger {
    Wire(wire::Pinger),
    Channel(channel::Pinger),
}

impl Pinger {
    fn round_trip(&mut self) -> io::Result<()> {
        match self {
            Pinger::Wire(p) => p.round_trip(),
            Pinger::Channel(p) => p.round_trip(),
        }
    }
}

/// One contender's ping-pong and its measurements.
struct Link {
    contender: Contender,
    // `far` before `pinger`, for the drop order: a child is killed before our end closes, so
    // on an early exit it dies quietly instead of reporting the EOF it would see.
    far: Far<u64>,
    pinger: Pinger,
    latency: LatencyRecorder,
    block: LatencyRecorder,
    block_p50s: Vec<f64>,
    cpu: Duration,
    sent: u64,
}

impl Link {
    fn start(contender: Contender, plan: &Plan) -> Result<Link> {
        let (near, far) = start(contender, "echo", plan)?;
        let pinger = match near {
            Near::Wire(w) => Pinger::Wire(wire::Pinger::new(w, plan.bytes)),
            Near::Channel(end) => Pinger::Channel(channel::Pinger::new(end, plan.bytes)),
        };
        Ok(Link {
            contender,
            far,
            pinger,
            latency: LatencyRecorder::new(),
            block: LatencyRecorder::new(),
            block_p50s: Vec::new(),
            cpu: Duration::ZERO,
            sent: 0,
        })
    }

    fn round_trip(&mut self, shutdown: &Shutdown) -> Result<()> {
        shutdown.check()?;
        self.pinger.round_trip().map_err(|e| self.far.broke(e))?;
        self.sent += 1;
        Ok(())
    }

    /// `n` timed round trips; the block's median goes to the verdict, its samples to the total.
    fn run_block(&mut self, n: u64, shutdown: &Shutdown) -> Result<()> {
        let pids = self.far.pids();
        let cpu_before = CpuClock::now(&pids)?;
        self.block.reset();
        for _ in 0..n {
            let start = Instant::now();
            self.round_trip(shutdown)?;
            self.block.record(start.elapsed());
        }
        self.cpu += CpuClock::since(cpu_before, &pids)?;
        self.latency.add(&self.block);
        self.block_p50s.push(self.block.p50() as f64);
        Ok(())
    }

    /// Ends the exchange; returns what the far side counted, and for a channel whether every
    /// buffer came back unmoved.
    fn finish(self) -> Result<(u64, Option<bool>)> {
        let Link {
            pinger, mut far, ..
        } = self;
        let (counted, same) = match pinger {
            Pinger::Wire(p) => (p.finish().map_err(|e| far.broke(e))?, None),
            Pinger::Channel(p) => {
                let same = p.same_buffer;
                (p.finish().map_err(|e| far.broke(e))?, Some(same))
            }
        };
        far.finish()?;
        Ok((counted, same))
    }
}

/// Per contender, one figure per block (median round trip in ns, or MiB/s), for the verdicts,
/// and the measurement of all its blocks.
type Blocks = Vec<(Contender, Vec<f64>, Measurement)>;

/// Step 1: round trips, contenders alternating block by block.
fn ping_pong(
    report: &mut Report,
    contenders: &[Contender],
    plan: &Plan,
    shutdown: &Shutdown,
) -> Result<Blocks> {
    let mut links = Vec::new();
    for &c in contenders {
        links.push(Link::start(c, plan)?);
    }
    let warmup = WARMUP.min(plan.messages);
    for link in &mut links {
        (0..warmup).try_for_each(|_| link.round_trip(shutdown))?;
    }
    for n in block_sizes(plan.messages, plan.blocks.min(plan.messages)) {
        for link in &mut links {
            link.run_block(n, shutdown)?;
        }
    }
    let mut blocks = Vec::new();
    let mut counts = Vec::new();
    let mut all_arrived = true;
    let mut moved = None;
    for link in links {
        let c = link.contender;
        let m = Measurement::histogram(
            "round_trip",
            c.variant,
            c.mech.name(),
            json!({ "bytes": plan.bytes, "pin": plan.pin.as_str() }),
            &link.latency,
            cpu_ns_per_op(link.cpu, link.latency.len()),
        );
        report.measure(m.clone());
        blocks.push((c, link.block_p50s.clone(), m));
        let sent = link.sent;
        let (counted, same) = link.finish()?;
        all_arrived &= sent == plan.messages + warmup && counted == sent;
        counts.push(format!("{}: {sent} sent, {counted} counted", c.label()));
        moved = moved.or(same);
    }
    report.check(
        &format!(
            "every frame arrived once, in order, intact ({})",
            placement_text(plan.pin.as_str())
        ),
        all_arrived,
        format!(
            "length, sequence number and CRC-32 checked at the far end, the echo compared byte \
             for byte at ours; {}",
            counts.join("; ")
        ),
    );
    if let Some(moved) = moved {
        report.check(
            &format!(
                "the channel moved buffers without copying them ({})",
                placement_text(plan.pin.as_str())
            ),
            moved,
            "every echo came back in the very buffer sent (same heap address): threads share memory",
        );
    }
    Ok(blocks)
}

/// The near side of a one-way stream.
enum Feed {
    Wire {
        wire: Box<dyn Wire>,
        frame: Vec<u8>,
        next: u64,
    },
    Channel(channel::Streamer),
}

/// One contender's stream and its measurements.
struct Pipeline {
    contender: Contender,
    far: Far<u64>, // Before `feed`: see `Link`.
    feed: Feed,
    block_mib_s: Vec<f64>,
    elapsed: Duration,
    cpu: Duration,
    /// Frames the far side said it had checked, after the last block.
    confirmed: u64,
}

impl Pipeline {
    fn start(contender: Contender, plan: &Plan) -> Result<Pipeline> {
        let (near, far) = start(contender, "sink", plan)?;
        let feed = match near {
            Near::Wire(wire) => {
                let mut frame = vec![0u8; STREAM_FRAME];
                wire::fill(&mut frame, 0);
                Feed::Wire {
                    wire,
                    frame,
                    next: 0,
                }
            }
            Near::Channel(end) => {
                Feed::Channel(channel::Streamer::new(end, STREAM_FRAME, CHANNEL_BUFFERS))
            }
        };
        Ok(Pipeline {
            contender,
            far,
            feed,
            block_mib_s: Vec::new(),
            elapsed: Duration::ZERO,
            cpu: Duration::ZERO,
            confirmed: 0,
        })
    }

    /// Sends `frames` frames, timed, and has the far side confirm it counted them all.
    fn run_block(&mut self, frames: u64, shutdown: &Shutdown) -> Result<()> {
        shutdown.check()?;
        let pids = self.far.pids();
        let cpu_before = CpuClock::now(&pids)?;
        let keep_going = || shutdown.check().is_ok();
        let start = Instant::now();
        let sent = match &mut self.feed {
            Feed::Wire { wire, frame, next } => {
                wire::send_frames(&mut **wire, frame, *next, frames, keep_going)
                    .and_then(|()| wire::receipt_so_far(&mut **wire, *next + frames))
                    .inspect(|_| *next += frames)
            }
            Feed::Channel(s) => s.send(frames, keep_going),
        };
        let took = start.elapsed();
        self.confirmed = sent.map_err(|e| self.far.broke(e))?;
        self.cpu += CpuClock::since(cpu_before, &pids)?;
        self.elapsed += took;
        self.block_mib_s
            .push(mib_per_s(frames * STREAM_FRAME as u64, took));
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let Pipeline { feed, mut far, .. } = self;
        match feed {
            Feed::Wire { mut wire, next, .. } => {
                wire::end_stream(&mut *wire, next).map_err(|e| far.broke(e))?;
            }
            Feed::Channel(streamer) => drop(streamer), // Hanging up ends the far thread.
        }
        far.finish().map(drop)
    }
}

/// Step 2: one-way streams, contenders alternating block by block.
fn stream(
    report: &mut Report,
    contenders: &[Contender],
    plan: &Plan,
    shutdown: &Shutdown,
) -> Result<Blocks> {
    let frames = plan.total.div_ceil(STREAM_FRAME as u64);
    let mut pipelines = Vec::new();
    for &c in contenders {
        pipelines.push(Pipeline::start(c, plan)?);
    }
    for _ in 0..plan.blocks {
        for p in &mut pipelines {
            p.run_block(frames, shutdown)?;
        }
    }
    let mut blocks = Vec::new();
    let count = frames * plan.blocks;
    let mut confirmed = Vec::new();
    for p in pipelines {
        let c = p.contender;
        let m = Measurement::value(
            "throughput",
            c.variant,
            c.mech.name(),
            json!({ "bytes": STREAM_FRAME, "pin": plan.pin.as_str() }),
            "MiB/s",
            mib_per_s(count * STREAM_FRAME as u64, p.elapsed),
            cpu_ns_per_op(p.cpu, count),
        );
        report.measure(m.clone());
        blocks.push((c, p.block_mib_s.clone(), m));
        confirmed.push((c, p.confirmed));
        p.finish()?;
    }
    // A frame the far end finds lost, repeated, reordered or corrupt stops the run at once
    // (exit 1); here, the counts it confirmed must add up to every frame we sent.
    let short: Vec<String> = confirmed
        .iter()
        .filter(|(_, n)| *n != count)
        .map(|(c, n)| format!("{}: {n} of {count}", c.label()))
        .collect();
    report.check(
        &format!(
            "every stream arrived whole ({})",
            placement_text(plan.pin.as_str())
        ),
        short.is_empty(),
        if short.is_empty() {
            format!(
                "{} blocks of {frames} frames of {} per contender; the far end checked each \
                 frame's number, length and CRC-32 and confirmed all {count} by count",
                plan.blocks,
                format_bytes(STREAM_FRAME as u64)
            )
        } else {
            format!("frames confirmed by the far end: {}", short.join("; "))
        },
    );
    Ok(blocks)
}

/// Step 3: boundaries, and a partial write.
fn show_boundaries(report: &mut Report) -> Result<()> {
    let sizes = [10, 20, 30];
    let stream = boundaries::stream_reads(&sizes).context("unix stream socketpair")?;
    report.check(
        "a stream socket keeps no message boundaries",
        stream == [60],
        format!("three writes of {sizes:?} bytes, queued before the first read, came out as reads of {stream:?} bytes: every reader of a stream needs framing"),
    );
    let dgram = boundaries::datagram_reads(&sizes).context("unix datagram socketpair")?;
    report.check(
        "a datagram socket keeps message boundaries",
        dgram == sizes,
        format!("three datagrams of {sizes:?} bytes came out as receives of {dgram:?} bytes"),
    );
    let want = 8 << 20;
    let (took, again) = boundaries::partial_write(want).context("non-blocking write")?;
    report.check(
        "a write to a stream socket may take only part of the buffer",
        took > 0 && took < want && again,
        format!(
            "one write of {} to a non-blocking Unix stream socket nobody read took {}; the next \
             said EAGAIN{}: a writer must loop (write_all)",
            format_bytes(want as u64),
            format_bytes(took as u64),
            if again { "" } else { " (it did NOT)" }
        ),
    );
    Ok(())
}

/// The seed's side a server model stands for.
fn model_variant(model: Model) -> Variant {
    match model {
        Model::ForkPerConnection | Model::Prefork { .. } => Variant::Process,
        Model::ThreadPerConnection | Model::ThreadPool { .. } => Variant::Thread,
    }
}

/// The `--model` flag of a server child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    Fork,
    Thread,
    Prefork,
    Pool,
}

/// One server model's figures over all blocks.
struct Load {
    model: Model,
    latency: LatencyRecorder,
    rates: Vec<f64>,
    pss_peaks: Vec<f64>,
    requests: u64,
    elapsed: Duration,
    cpu: Duration,
    peak: Sample,
    served: ConnStats,
    connections: u64,
    after_rude: u64,
}

impl Load {
    fn new(model: Model) -> Load {
        Load {
            model,
            latency: LatencyRecorder::new(),
            rates: Vec::new(),
            pss_peaks: Vec::new(),
            requests: 0,
            elapsed: Duration::ZERO,
            cpu: Duration::ZERO,
            peak: Sample::default(),
            served: ConnStats::default(),
            connections: 0,
            after_rude: 0,
        }
    }
}

/// What the sampler saw of the server and its children at their largest.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    pss_kib: u64,
    rss_kib: u64,
    threads: usize,
    processes: usize,
}

/// Samples the memory of `server` and its children until `done`; returns the peaks and the
/// CPU time the sampling itself took (not the server's, so it is taken off).
fn sample_server(server: u32, done: &AtomicBool) -> (Sample, Duration) {
    let cpu = || {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
            .map(Duration::from)
            .unwrap_or_default()
    };
    let before = cpu();
    let mut peak = Sample::default();
    loop {
        let children = labkit::procfs::main_thread_children(server);
        let (mut pss, mut rss) = (0, 0);
        let mut alive = 0;
        for pid in std::iter::once(server).chain(children.iter().copied()) {
            // A zombie (exited, not yet reaped) has no memory left to read, and is not counted.
            if let Some((p, r)) = labkit::procfs::memory_kib(pid) {
                pss += p;
                rss += r;
                alive += 1;
            }
        }
        peak.pss_kib = peak.pss_kib.max(pss);
        peak.rss_kib = peak.rss_kib.max(rss);
        peak.processes = peak.processes.max(alive);
        peak.threads = peak
            .threads
            .max(labkit::procfs::thread_count(server).unwrap_or(0));
        if done.load(Ordering::Acquire) {
            return (peak, cpu() - before);
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// Step 4: the server under load, models alternating block by block.
fn serve_under_load(
    report: &mut Report,
    models: &[Model],
    plan: &Plan,
    shutdown: &Shutdown,
) -> Result<Vec<Load>> {
    let mut loads: Vec<Load> = models.iter().map(|&model| Load::new(model)).collect();
    // What a block costs in CPU with no timed request (start the server, the warm-up, stop,
    // reap): taken off each block, so CPU per request is the requests' own.
    let mut idle = Vec::new();
    for load in &loads {
        let mut probe = Load::new(load.model);
        server_block(&mut probe, plan, 0, shutdown, false)?;
        idle.push(probe.cpu);
    }
    for block in 0..plan.blocks {
        for (load, idle) in loads.iter_mut().zip(&idle) {
            let before = load.cpu;
            server_block(load, plan, plan.requests, shutdown, block == 0)?;
            load.cpu = before + (load.cpu - before).saturating_sub(*idle);
        }
    }
    let per_client = plan.requests * plan.blocks;
    let mut problems = Vec::new();
    let mut rude = Vec::new();
    for load in &loads {
        let (variant, name) = (model_variant(load.model), load.model.name());
        let config = json!({
            "bytes": plan.bytes, "clients": plan.clients, "per_connection": plan.per_connection,
            "workers": if matches!(load.model, Model::ThreadPool { .. } | Model::Prefork { .. }) { plan.workers } else { 0 },
        });
        let per_request = cpu_ns_per_op(load.cpu, load.requests);
        report.measure(Measurement::histogram(
            "request",
            variant,
            name,
            config.clone(),
            &load.latency,
            per_request,
        ));
        report.measure(Measurement::value(
            "requests_per_s",
            variant,
            name,
            config.clone(),
            "req/s",
            load.requests as f64 / load.elapsed.as_secs_f64(),
            per_request,
        ));
        for (name, kib) in [
            ("peak_pss", load.peak.pss_kib),
            ("peak_rss", load.peak.rss_kib),
        ] {
            report.measure(Measurement::value(
                name,
                variant,
                load.model.name(),
                config.clone(),
                "KiB",
                kib as f64,
                None,
            ));
        }
        // The clients' requests, each block's warm-up, and the one after the rude client.
        let expected = plan.clients * per_client + plan.blocks * WARMUP_REQUESTS + 1;
        if load.requests != plan.clients * per_client
            || load.served.requests != expected
            || load.served.failed != 0
        {
            problems.push(format!(
                "{name}: clients confirmed {} requests, the server served {} of {expected}, {} connections failed",
                load.requests, load.served.requests, load.served.failed
            ));
        }
        rude.push(format!(
            "{name}: {} left mid-request, then {} request served",
            load.served.left_mid_request, load.after_rude
        ));
        if load.served.left_mid_request != 1 || load.after_rude != 1 {
            problems.push(format!("{name}: {}", rude.last().expect("just pushed")));
        }
    }
    report.check(
        "every request was served once and echoed intact",
        problems.is_empty(),
        if problems.is_empty() {
            format!(
                "{} clients x {per_client} requests per model, each checked at both ends and \
                 confirmed by the server's per-connection count; TCP on 127.0.0.1 only",
                plan.clients
            )
        } else {
            problems.join("; ")
        },
    );
    if !loads.is_empty() {
        let all_rude = loads
            .iter()
            .all(|l| l.served.left_mid_request == 1 && l.after_rude == 1);
        report.check(
            "a client leaving mid-request is logged and the server carries on",
            all_rude,
            format!(
                "a client sent half a request and closed (the server logged it on stderr); {}",
                rude.join("; ")
            ),
        );
    }
    if let Some(fork) = loads.iter().find(|l| l.model == Model::ForkPerConnection) {
        let threads = loads
            .iter()
            .filter(|l| l.model != Model::ForkPerConnection)
            .map(|l| format!("{} peaked at {} threads", l.model.name(), l.peak.threads))
            .collect::<Vec<_>>();
        let name = "the forking server had no other thread when it forked";
        if fork.peak.processes > 1 {
            report.check(
                name,
                fork.peak.threads == 1,
                format!(
                    "fork-per-connection: {} thread(s) at most, up to {} processes (the server \
                     and its children){}{}",
                    fork.peak.threads,
                    fork.peak.processes,
                    if threads.is_empty() { "" } else { "; " },
                    threads.join(", ")
                ),
            );
        } else {
            // The sampler looks every few ms: a short run can end before it sees a child.
            report.skip(
                name,
                format!(
                    "not observed: the blocks ended before the sampler saw a forked child \
                     (server threads seen: {}); more --requests make the blocks longer",
                    fork.peak.threads
                ),
            );
        }
    }
    Ok(loads)
}

/// One block of one model: a fresh server process, the clients against it, then the stop.
fn server_block(
    load: &mut Load,
    plan: &Plan,
    requests_each: u64,
    shutdown: &Shutdown,
    rude: bool,
) -> Result<()> {
    let listener = loopback_listener()?;
    let addr: SocketAddr = listener.local_addr().context("getsockname")?;
    let (stop_rx, stop_tx) = std::io::pipe().context("pipe (stop)")?;
    let (stats_rx, stats_tx) = std::io::pipe().context("pipe (stats)")?;
    let (model, workers) = match load.model {
        Model::ForkPerConnection => ("fork", 0),
        Model::ThreadPerConnection => ("thread", 0),
        Model::Prefork { workers } => ("prefork", workers),
        Model::ThreadPool { workers } => ("pool", workers),
    };
    let mut extra = vec![
        "--model".to_owned(),
        model.to_owned(),
        "--workers".to_owned(),
        workers.max(1).to_string(),
        "--bytes".to_owned(),
        plan.bytes.to_string(),
    ];
    if requests_each > 0 {
        // Unused by the server; it tells a timed block's server from the idle baseline's in a
        // process listing (the tests kill the former).
        extra.extend(["--requests".to_owned(), requests_each.to_string()]);
    }
    // CPU of this process (the clients) and of reaped children (the server and its own).
    let cpu_before = CpuClock::now(&[])?;
    let mut peer = Peer::spawn(
        "server",
        &[listener.as_fd(), stop_rx.as_fd(), stats_tx.as_fd()],
        None,
        &extra,
    )?;
    // The server alone holds these now: if it dies, connecting fails instead of waiting.
    drop((listener, stop_rx, stats_tx));
    // Read the records as they come: a full pipe would stall every connection's last write.
    let stats_rx = File::from(OwnedFd::from(stats_rx));
    let stats = std::thread::spawn(move || server::read_stats(stats_rx));
    let server = peer.pid().as_raw() as u32;
    let done = AtomicBool::new(false);
    // One client failing stops the others: the run ends now, not when they finish.
    let failed = AtomicBool::new(false);
    let keep_going = || !failed.load(Ordering::Relaxed) && shutdown.check().is_ok();
    // A warm-up connection, untimed: the first timed request must not wait for the server to
    // start (its runtime, its pool) nor, for the fork model, be the first to fork.
    server::client(
        addr,
        WARMUP_REQUESTS,
        WARMUP_REQUESTS,
        plan.bytes,
        HANG_GUARD,
        &mut |_| {},
        &keep_going,
    )
    .map_err(|e| explain_break(std::slice::from_mut(&mut peer), e))
    .context("the warm-up connection")?;
    let start = Instant::now();
    let (results, elapsed, (peak, sampling)) = std::thread::scope(|s| {
        let sampler = s.spawn(|| sample_server(server, &done));
        let clients: Vec<_> = (0..plan.clients)
            .map(|_| {
                s.spawn(|| {
                    let mut latency = LatencyRecorder::new();
                    let served = server::client(
                        addr,
                        requests_each,
                        plan.per_connection,
                        plan.bytes,
                        HANG_GUARD,
                        &mut |d| latency.record(d),
                        &keep_going,
                    );
                    if served.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    (served, latency)
                })
            })
            .collect();
        let results: Vec<_> = clients.into_iter().map(|c| c.join()).collect();
        let elapsed = start.elapsed();
        done.store(true, Ordering::Release);
        let peak = sampler.join().unwrap_or_default();
        (results, elapsed, peak)
    });
    let mut requests = 0;
    let mut first_error: Option<(usize, io::Error)> = None;
    for (i, result) in results.into_iter().enumerate() {
        let (served, latency) = result.map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        match served {
            Ok(n) => requests += n,
            // A client stopped because another failed says less than the one that failed.
            Err(e)
                if first_error
                    .as_ref()
                    .is_none_or(|(_, f)| f.kind() == io::ErrorKind::Interrupted) =>
            {
                first_error = Some((i, e));
            }
            Err(_) => {}
        }
        load.latency.add(&latency);
    }
    if let Some((i, e)) = first_error {
        let what = if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            format!(
                "had no answer within the {} s hang guard",
                HANG_GUARD.as_secs()
            )
        } else {
            "lost its connection (the process or thread serving it ended)".to_owned()
        };
        let name = load.model.name();
        return Err(explain_break(std::slice::from_mut(&mut peer), e)
            .context(format!("client {i} of the {name} server {what}")));
    }
    if rude {
        server::leave_mid_request(addr, plan.bytes).context("the rude client")?;
        load.after_rude =
            server::client(addr, 1, 1, plan.bytes, HANG_GUARD, &mut |_| {}, &keep_going)
                .map_err(|e| explain_break(std::slice::from_mut(&mut peer), e))?;
    }
    drop(stop_tx); // EOF: the server stops accepting, finishes its connections and exits.
    peer.finish()?;
    // The server has exited, and its children died with it at the latest: the pipe is at EOF.
    let stats = stats
        .join()
        .map_err(|_| anyhow::anyhow!("the stats reader panicked"))?
        .context("read the server's stats pipe")?;
    load.cpu += CpuClock::since(cpu_before, &[])?.saturating_sub(sampling);
    if requests_each == 0 {
        return Ok(()); // The idle baseline: only its CPU time counts.
    }
    let (connections, served) = ConnStats::total(&stats);
    load.connections += connections;
    load.served.requests += served.requests;
    load.served.left_mid_request += served.left_mid_request;
    load.served.failed += served.failed;
    load.requests += requests;
    load.elapsed += elapsed;
    load.rates.push(requests as f64 / elapsed.as_secs_f64());
    load.pss_peaks.push(peak.pss_kib as f64);
    load.peak.pss_kib = load.peak.pss_kib.max(peak.pss_kib);
    load.peak.rss_kib = load.peak.rss_kib.max(peak.rss_kib);
    load.peak.threads = load.peak.threads.max(peak.threads);
    load.peak.processes = load.peak.processes.max(peak.processes);
    Ok(())
}

/// Step 6: the claims, from this run's figures and what the probing child saw.
fn judge_claims(
    report: &mut Report,
    plan: &Plan,
    rounds: &[(labkit::Pin, Blocks, Blocks)],
    separate: Option<(Verdict, String)>,
    loads: &[Load],
) {
    // The two contenders the claim sets against each other, if both ran.
    let pair = |series: &Blocks| {
        let find = |variant, mech| {
            series
                .iter()
                .find(|(c, ..)| *c == Contender { variant, mech })
                .cloned()
        };
        find(Variant::Process, Mech::Socketpair).zip(find(Variant::Thread, Mech::Channel))
    };
    for (pin, latency, throughput) in rounds.iter().filter(|r| r.0.judged()) {
        let place = placement_text(pin.as_str());
        let size = format_bytes(plan.bytes as u64);
        for (series, what, unit, better) in [
            (
                latency,
                format!("round trip of {size}, {place}"),
                "ns",
                Better::Lower,
            ),
            (
                throughput,
                format!("stream of 64 KiB frames, {place}"),
                "MiB/s",
                Better::Higher,
            ),
        ] {
            let Some((p, t)) = pair(series) else {
                continue;
            };
            let test = Test::new(what, unit, better, "faster")
                .favoured("threads over a channel", &t.1)
                .other("processes over a socketpair", &p.1);
            report
                .claim_measured("comm.threads-faster", test, [&p.2, &t.2])
                .placement = Some(pin.as_str().to_owned());
        }
    }
    // A failed check means this run cannot say how the data travelled: no finding either way.
    if let Some((verdict, evidence)) = separate.filter(|_| report.passed()) {
        report.claim_observed("comm.process-needs-ipc", verdict, evidence);
    }
    let mut summary = format!("{}-byte round trips", plan.bytes);
    for (pin, latency, _) in rounds {
        if let Some((p, t)) = pair(latency) {
            summary.push_str(&format!(
                "; {}: {} over a socketpair between processes, {} over a channel between threads",
                placement_text(pin.as_str()),
                p.2.p50
                    .map_or_else(|| "-".to_owned(), |v| format_ns(v as f64)),
                t.2.p50
                    .map_or_else(|| "-".to_owned(), |v| format_ns(v as f64)),
            ));
        }
    }
    // Like with like: a pool of threads against a pool of processes, both created before the
    // load; a thread per connection against a process per connection.
    let find = |name: &str| loads.iter().find(|l| l.model.name() == name);
    for (threads, processes) in [
        ("thread-pool", "prefork"),
        ("thread-per-connection", "fork-per-connection"),
    ] {
        let (Some(t), Some(p)) = (find(threads), find(processes)) else {
            continue;
        };
        let key = |r: &Report, l: &Load, name: &str| {
            let key = format!(
                "{name}/{}/{}",
                model_variant(l.model).as_str(),
                l.model.name()
            );
            r.find(&key).cloned()
        };
        let rates = (
            key(report, p, "requests_per_s"),
            key(report, t, "requests_per_s"),
        );
        if let (Some(pm), Some(tm)) = rates {
            summary.push_str(&format!(
                "; echo server, {threads} {:.0} req/s vs {processes} {:.0}",
                tm.value.unwrap_or(0.0),
                pm.value.unwrap_or(0.0)
            ));
            let test = Test::new(
                format!(
                    "echo server, {} clients, {} requests per connection",
                    plan.clients, plan.per_connection
                ),
                "req/s",
                Better::Higher,
                "faster",
            )
            .favoured(threads, &t.rates)
            .other(processes, &p.rates);
            report.claim_measured("usecase.shared-data", test, [&pm, &tm]);
        }
        if let (Some(pm), Some(tm)) = (key(report, p, "peak_pss"), key(report, t, "peak_pss")) {
            let test = Test::new(
                "peak memory of the server with its children, PSS (each shared page counted once)",
                "KiB",
                Better::Lower,
                "smaller",
            )
            .favoured(threads, &t.pss_peaks)
            .other(processes, &p.pss_peaks);
            report.claim_measured("usecase.shared-data", test, [&pm, &tm]);
        }
    }
    summary.push_str(if report.passed() {
        "; every frame and request arrived."
    } else {
        "; a check FAILED."
    });
    report.summary = summary;
}

/// The other side of each exchange, when this binary runs as a child (`--role`).
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let role = args.role.role.clone().unwrap_or_default();
    match role.as_str() {
        "echo" | "sink" => {
            // Held until we exit: its closing tells the parent we are gone.
            let _alive = fds.next().context("no liveness fd passed")?;
            let mech = args.transport.context("--transport is required")?;
            let target = match (args.path, args.port) {
                (Some(p), _) => Target::Path(p),
                (None, Some(p)) => Target::Port(p),
                _ => Target::Inherited,
            };
            let echo = role == "echo";
            let max = max_frame(echo, args.bytes.unwrap_or(BYTES) as usize);
            far_work(mech, echo, max, fds.next(), target)
                .with_context(|| format!("{role} over {}", mech.name()))?;
        }
        "server" => {
            let listener = TcpListener::from(fds.next().context("no listener fd passed")?);
            let stop = fds.next().context("no stop fd passed")?;
            let stats = File::from(fds.next().context("no stats fd passed")?);
            let workers = args.workers.unwrap_or(CLIENTS) as usize;
            let model = match args.model.context("--model is required")? {
                ModelArg::Fork => Model::ForkPerConnection,
                ModelArg::Prefork => Model::Prefork { workers },
                ModelArg::Thread => Model::ThreadPerConnection,
                ModelArg::Pool => Model::ThreadPool { workers },
            };
            if model_variant(model) == Variant::Process {
                // The fork rule: the process that forks has no other thread.
                let threads = labkit::procfs::thread_count(std::process::id());
                if threads != Some(1) {
                    bail!("a forking server must have one thread, it has {threads:?}");
                }
            }
            let max = args.bytes.unwrap_or(BYTES) as usize;
            server::run(model, max, listener, stop, stats).context("serve")?;
        }
        "probe" => {
            let mut theirs = UnixStream::from(fds.next().context("no socket fd passed")?);
            let seen = probe::look_and_receive(args.role.probe_addr()?, |b| theirs.read_exact(b))
                .context("read /proc/self/mem, then the socket")?;
            theirs
                .write_all(&seen.encode())
                .context("write to the socket")?;
        }
        other => return Err(usage(format!("unknown role `{other}`"))),
    }
    Ok(Outcome::Passed)
}

/// Step 5: what a child sees of our memory. We hand it the address of a fresh nonce; it reads
/// its own memory there, then receives the nonce through a socketpair and reports both.
fn probe_child_memory() -> Result<(Verdict, String)> {
    let mut nonce = Nonce::blank();
    let (mut ours, theirs) = UnixStream::pair().context("socketpair(SOCK_STREAM)")?;
    let mut peer = Peer::spawn("probe", &[theirs.as_fd()], None, &nonce.args())?;
    drop(theirs); // The child's now; ours would hide its death from us.
    // Written only now: a copy of our memory made at the child's creation holds zeros.
    nonce.fill().context("read /dev/urandom")?;
    let mut reply = [0u8; PROBE_LEN];
    ours.write_all(nonce.bytes())
        .and_then(|()| ours.read_exact(&mut reply))
        .map_err(|e| peer.death(e))?;
    peer.finish()?;
    Ok(probe::judge(
        &nonce,
        &Probe::decode(&reply),
        "a Unix socketpair",
    ))
}

#[cfg(test)]
mod flag_tests {
    /// Random command lines (see `testkit::fuzz_flags`): accepted or refused with a
    /// message naming the limit, never a panic. `LAB_FUZZ_CASES=10000` for the full figure.
    #[test]
    fn random_flags_are_accepted_or_refused_never_a_panic() {
        testkit::fuzz_flags::<super::Args>(testkit::fuzz_cases());
    }
}
