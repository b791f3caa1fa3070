//! # pipes: processes talk through the kernel; threads can hand each other memory
//!
//! **Claims** (from the seed, checked on this machine):
//! * `comm.process-needs-ipc`: processes have separate memory, so they need IPC (here, pipes)
//!   to communicate;
//! * `comm.threads-faster`: inter-thread communication is simpler and faster than IPC.
//!
//! **Steps**
//! 1. [`ping_pong`]: three contenders send `--messages` numbered messages of `--bytes` bytes
//!    back and forth: two processes over two pipes, two threads over two pipes, and two threads
//!    over two crossbeam channels. They run in alternating blocks after a warm-up; each round
//!    trip is timed into a histogram, and both ends check every message.
//! 2. [`stream`]: the same three move a `--total`-byte stream in 64 KiB writes, in alternating
//!    blocks; the reader's CRC-32 and byte count are checked against the writer's.
//! 3. [`show_eof_needs_every_writer`]: a child writes and exits, but our own copy of the write
//!    end keeps the pipe open, so no EOF comes (a hang guard shows it); closing it gives EOF.
//! 4. [`show_epipe`]: once the only reader has exited, a write fails with EPIPE.
//! 5. [`show_fifo`]: a child that inherited no pipe finds one by name: a FIFO.
//! 6. [`probe_child_memory`]: a child is handed the address of a fresh nonce in our memory;
//!    it reads its own memory there (`/proc/self/mem`) and finds no nonce, while the same
//!    nonce sent through a pipe arrives: what it knows of us came through the kernel.
//! 7. [`judge_claims`]: steps 1 and 2, block pair by block pair, decide `comm.threads-faster`
//!    once per placement (one CPU, two CPUs); step 6 decides `comm.process-needs-ipc`.
//!
//! Steps 1 and 2 run once per placement: both sides on one CPU (each hand-off a context
//! switch), then on two (each a cross-CPU wake-up); `--pin same|split` runs one of them, and
//! `--pin none` leaves placement to the scheduler, whose figures are shown but not judged.
//!
//! The other process is always this binary, re-executed with a hidden `--role`; it gets its
//! pipe ends by inheritance and dies with us (`PR_SET_PDEATHSIG`).
//!
//! **Run it**: `cargo run --release -p pipes` (about two seconds), `-- --json` for the Report,
//! `-- --pin same --bytes 4096` to put both sides on one CPU with larger messages.
//!
//! The output gives, per contender, the round-trip p50/p99, the stream's throughput and the
//! CPU time per operation (both sides counted), then the checks and the claims' verdicts.

mod pingpong;
mod semantics;
mod stream;

use std::io::{PipeReader, PipeWriter, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use crossbeam_channel::{Receiver, Sender, bounded};
use labkit::child::{Far, Peer, liveness};
use labkit::measure::{block_sizes, cpu_ns_per_op, mib_per_s};
use labkit::names::PrivateDir;
use labkit::pin::{PinGuard, Placement};
use labkit::probe::{self, Nonce, PROBE_LEN, Probe};
use labkit::report::{format_bytes, placement_text};
use labkit::signals::Shutdown;
use labkit::{
    Better, CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, Pin, PinArgs, Report,
    RoleArgs, Test, Variant, exit::usage,
};
use serde_json::json;

use pingpong::{ChannelPinger, HEADER, RoundTrip, StreamPinger};
use semantics::{Arrival, Next};
use stream::{CHUNK, Piece, Receipt};

/// Round trips per contender by default, and with `--quick`.
const MESSAGES: u64 = 20_000;
const QUICK_MESSAGES: u64 = 600;
/// The most round trips `--messages` accepts.
const MAX_MESSAGES: u64 = 10_000_000;
/// Message size by default; the smallest holds the sequence number; the largest is 1 MiB.
const BYTES: u64 = 64;
const MAX_BYTES: u64 = 1 << 20;
/// Bytes per stream by default, and with `--quick`; the largest `--total` is 16 GiB.
const TOTAL: u64 = 32 << 20;
const QUICK_TOTAL: u64 = 1 << 20;
const MAX_TOTAL: u64 = 16 << 30;
/// Alternating blocks per contender (6 reach a 95% interval in one run), and with `--quick`.
const BLOCKS: u64 = 6;
const QUICK_BLOCKS: u64 = 3;
/// Round trips per contender before timing starts.
const WARMUP: u64 = 200;
/// How long the EOF demo waits for an EOF that cannot come.
const TRAP_WAIT: Duration = Duration::from_millis(250);
/// Waits that should end at once; reaching one means something is wrong, not slow.
const HANG_GUARD: Duration = Duration::from_secs(30);
/// Messages through the FIFO.
const FIFO_MESSAGES: u64 = 100;

#[derive(Parser, Debug)]
#[command(
    about = "Pipes between processes vs pipes and channels between threads: round trips, \
             throughput, EOF and EPIPE, each checked.",
    after_help = labkit::examples!(
        "",
        " -- --json | jq .claims",
        " -- --messages 100000 --bytes 4096 --pin same",
        " -- --variant process --total 256MiB"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    placing: PinArgs,

    /// Round trips per contender [default: 20000; --quick: 600; at most 10000000].
    #[arg(short = 'n', long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_MESSAGES))]
    messages: Option<u64>,

    /// Bytes per message, sequence number included [default: 64; from 8 to 1MiB].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(HEADER as u64, MAX_BYTES))]
    bytes: Option<u64>,

    /// Bytes per stream, e.g. `256MiB` [default: 32MiB; --quick: 1MiB; from 1 to 16GiB].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_TOTAL))]
    total: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,

    /// The FIFO a `fifo-writer` child opens (internal).
    #[arg(long, hide = true)]
    fifo: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.role.role.is_some() {
        return labkit::finish(concat!(env!("CARGO_PKG_NAME"), " (child)"), run_child(args));
    }
    labkit::finish(env!("CARGO_PKG_NAME"), run(args))
}

/// The sizes of this run, after defaults.
struct Plan {
    messages: u64,
    bytes: usize,
    total: u64,
    blocks: u64,
}

/// Where both sides of one round of steps 1 and 2 ran.
#[derive(Clone, Copy)]
struct Placed {
    pin: Pin,
    cpus: Placement,
}

/// Per contender, one figure per block (median round trip in ns, or MiB/s), for the verdicts,
/// and the measurement of all its blocks.
type Blocks = Vec<(Contender, Vec<f64>, Measurement)>;

fn run(args: Args) -> Result<Outcome> {
    let shutdown = labkit::signals::install().context("install SIGINT/SIGTERM handlers")?;
    let common = &args.common;
    let quick = common.quick;
    let messages = args
        .messages
        .unwrap_or(if quick { QUICK_MESSAGES } else { MESSAGES });
    let plan = Plan {
        messages,
        bytes: args.bytes.unwrap_or(BYTES) as usize,
        total: args
            .total
            .unwrap_or(if quick { QUICK_TOTAL } else { TOTAL }),
        blocks: (if quick { QUICK_BLOCKS } else { BLOCKS }).min(messages),
    };
    let (placements, left_out) = Placement::each(args.placing.pin)?;

    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    report.param("messages", plan.messages);
    report.param("bytes", plan.bytes);
    report.param("total", plan.total);
    report.param("blocks", plan.blocks);
    report.param("pin", args.placing.pin.as_str());
    let described: Vec<String> = placements.iter().map(|(_, p)| p.describe()).collect();
    report.param("placement", described.join("; "));
    if let Some(why) = left_out {
        report.skip("round trips and streams on two CPUs", why);
    }

    let contenders = contenders(common);
    let mut rounds = Vec::new();
    for (pin, cpus) in placements {
        let at = Placed { pin, cpus };
        // The main thread is one side of every exchange; the pin is undone after the timing.
        let _pin = PinGuard::pin(cpus.main).context("sched_setaffinity (main thread)")?;
        rounds.push((
            at,
            ping_pong(&mut report, &contenders, &plan, at, shutdown)?,
            stream(&mut report, &contenders, &plan, at, shutdown)?,
        ));
    }
    let mut separate = None;
    if common.wants(Variant::Process) {
        show_eof_needs_every_writer(&mut report)?;
        show_epipe(&mut report, plan.bytes)?;
        show_fifo(&mut report, shutdown)?;
        separate = Some(probe_child_memory()?);
    }
    common.note_one_side(&mut report);
    judge_claims(&mut report, &plan, &rounds, separate);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    Ok(Outcome::of(&report))
}

/// Who talks to whom, through what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    ProcessPipe,
    ThreadPipe,
    ThreadChannel,
}

impl Contender {
    fn variant(self) -> Variant {
        match self {
            Contender::ProcessPipe => Variant::Process,
            Contender::ThreadPipe | Contender::ThreadChannel => Variant::Thread,
        }
    }

    fn mechanism(self) -> &'static str {
        match self {
            Contender::ProcessPipe | Contender::ThreadPipe => "pipe",
            Contender::ThreadChannel => "channel",
        }
    }

    fn label(self) -> String {
        format!("{}/{}", self.variant().as_str(), self.mechanism())
    }
}

fn contenders(common: &CommonArgs) -> Vec<Contender> {
    [
        Contender::ProcessPipe,
        Contender::ThreadPipe,
        Contender::ThreadChannel,
    ]
    .into_iter()
    .filter(|c| common.wants(c.variant()))
    .collect()
}

/// Two pipes, one each way: (our reader, our writer, their reader, their writer).
fn pipe_pair() -> Result<(PipeReader, PipeWriter, PipeReader, PipeWriter)> {
    let (their_rx, our_tx) = std::io::pipe().context("pipe")?;
    let (our_rx, their_tx) = std::io::pipe().context("pipe")?;
    Ok((our_rx, our_tx, their_rx, their_tx))
}

/// Starts the far side of a pipe exchange in `role` (a child process) or as a thread running
/// `thread_work`, and returns our two ends.
fn start_pipe_peer<T: Send + 'static>(
    contender: Contender,
    role: &str,
    extra: &[String],
    cpu: Option<usize>,
    thread_work: impl FnOnce(PipeReader, PipeWriter) -> std::io::Result<T> + Send + 'static,
) -> Result<(PipeReader, PipeWriter, Far<T>)> {
    let (our_rx, our_tx, their_rx, their_tx) = pipe_pair()?;
    let far = if contender == Contender::ProcessPipe {
        let peer = Peer::spawn(role, &[their_rx.as_fd(), their_tx.as_fd()], cpu, extra)?;
        // The child has its copies now. Ours must go, or EOF would never reach either side.
        drop((their_rx, their_tx));
        Far::Process(peer)
    } else {
        Far::thread(role, cpu, move || thread_work(their_rx, their_tx))?
    };
    Ok((our_rx, our_tx, far))
}

/// One contender's ping-pong link and its measurements.
struct Link {
    contender: Contender,
    // Fields drop in order: a child peer is killed before our pipe ends close, so on an early
    // exit it dies quietly instead of reporting the EOF it would otherwise see.
    far: Far<u64>,
    pinger: Pinger,
    latency: LatencyRecorder,
    block: LatencyRecorder,
    block_p50s: Vec<f64>,
    cpu: Duration,
}

enum Pinger {
    Pipe(StreamPinger<PipeReader, PipeWriter>),
    Channel(ChannelPinger),
}

impl Pinger {
    fn as_round_trip(&mut self) -> &mut dyn RoundTrip {
        match self {
            Pinger::Pipe(p) => p,
            Pinger::Channel(p) => p,
        }
    }
}

/// Starts the far side for `contender`: an echo child, an echo thread over pipes, or an echo
/// thread over channels.
fn start_link(contender: Contender, bytes: usize, cpu: Option<usize>) -> Result<Link> {
    let (pinger, far) = match contender {
        Contender::ProcessPipe | Contender::ThreadPipe => {
            let extra = ["--bytes".to_owned(), bytes.to_string()];
            let (rx, tx, far) = start_pipe_peer(contender, "echo", &extra, cpu, move |rx, tx| {
                pingpong::stream_echo(rx, tx, bytes)
            })?;
            (Pinger::Pipe(StreamPinger::new(rx, tx, bytes)), far)
        }
        Contender::ThreadChannel => {
            let (to_echo, echo_rx) = bounded(1);
            let (echo_tx, from_echo) = bounded(1);
            let far = Far::thread("echo", cpu, move || {
                pingpong::channel_echo(echo_rx, echo_tx)
            })?;
            (
                Pinger::Channel(ChannelPinger::new(to_echo, from_echo, bytes)),
                far,
            )
        }
    };
    Ok(Link {
        contender,
        pinger,
        far,
        latency: LatencyRecorder::new(),
        block: LatencyRecorder::new(),
        block_p50s: Vec::new(),
        cpu: Duration::ZERO,
    })
}

impl Link {
    /// One round trip; a failure says what became of the far side.
    fn round_trip(&mut self, shutdown: &Shutdown) -> Result<()> {
        shutdown.check()?;
        self.pinger
            .as_round_trip()
            .round_trip()
            .map_err(|err| self.far.broke(err))
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

    /// Untimed round trips, so caches, page tables and the scheduler settle first.
    fn warm_up(&mut self, n: u64, shutdown: &Shutdown) -> Result<()> {
        (0..n).try_for_each(|_| self.round_trip(shutdown))
    }

    /// Ends the exchange; returns (round trips we made, messages the far side counted,
    /// whether channel buffers came back unmoved).
    fn finish(self) -> Result<(u64, u64, Option<bool>)> {
        let Link {
            pinger, mut far, ..
        } = self;
        match pinger {
            Pinger::Pipe(p) => {
                let sent = p.count();
                let echoed = p.finish().map_err(|e| far.broke(e))?;
                far.finish()?;
                Ok((sent, echoed, None))
            }
            Pinger::Channel(p) => {
                let (sent, same) = (p.count(), p.same_buffer);
                drop(p); // Hanging up ends the echo thread's loop.
                let echoed = far.finish()?.unwrap_or(0);
                Ok((sent, echoed, Some(same)))
            }
        }
    }
}

/// Step 1: round trips, contenders alternating block by block.
fn ping_pong(
    report: &mut Report,
    contenders: &[Contender],
    plan: &Plan,
    at: Placed,
    shutdown: &Shutdown,
) -> Result<Blocks> {
    let mut links = Vec::new();
    for &c in contenders {
        links.push(start_link(c, plan.bytes, at.cpus.peer)?);
    }
    for link in &mut links {
        link.warm_up(WARMUP.min(plan.messages), shutdown)?;
    }
    for n in block_sizes(plan.messages, plan.blocks) {
        for link in &mut links {
            link.run_block(n, shutdown)?;
        }
    }

    let mut blocks = Vec::new();
    let mut counts = Vec::new();
    let mut all_arrived = true;
    let mut channel_moved = None;
    for link in links {
        let contender = link.contender;
        let timed = link.latency.len();
        let per_op = cpu_ns_per_op(link.cpu, timed);
        let m = Measurement::histogram(
            "round_trip",
            contender.variant(),
            contender.mechanism(),
            json!({ "bytes": plan.bytes, "pin": at.pin.as_str() }),
            &link.latency,
            per_op,
        );
        report.measure(m.clone());
        blocks.push((contender, link.block_p50s.clone(), m));
        let expected = plan.messages + WARMUP.min(plan.messages);
        let (sent, echoed, same_buffer) = link.finish()?;
        all_arrived &= sent == expected && echoed == expected;
        counts.push(format!(
            "{}: {sent} sent, {echoed} echoed",
            contender.label()
        ));
        channel_moved = channel_moved.or(same_buffer);
    }
    report.check(
        &format!(
            "every message arrived once, in order, intact ({})",
            placement_text(at.pin.as_str())
        ),
        all_arrived,
        format!(
            "sequence numbers and payloads checked at both ends; {}",
            counts.join("; ")
        ),
    );
    if let Some(moved) = channel_moved {
        report.check(
            &format!(
                "the channel moved buffers without copying them ({})",
                placement_text(at.pin.as_str())
            ),
            moved,
            "every echo came back in the very buffer sent (same heap address): threads share memory",
        );
    }
    Ok(blocks)
}

/// One contender's streaming link: what writes, and the far side that reads.
struct Pipeline {
    contender: Contender,
    // `far` before `writer`, for the drop order: see `Link`.
    far: Far<u64>,
    writer: StreamWriter,
    block_mib_s: Vec<f64>,
    elapsed: Duration,
    cpu: Duration,
    reads: u64,
    bad: Vec<String>,
}

enum StreamWriter {
    Pipe {
        tx: PipeWriter,
        rx: PipeReader,
        chunk: Vec<u8>,
    },
    Channel {
        tx: Sender<Piece>,
        pool: Receiver<Vec<u8>>,
        receipts: Receiver<Receipt>,
    },
}

/// Buffers the channel contender lends its reader: a few in flight, as a pipe holds 64 KiB.
const CHANNEL_BUFFERS: usize = 4;

fn start_pipeline(contender: Contender, cpu: Option<usize>) -> Result<Pipeline> {
    let (writer, far) = match contender {
        Contender::ProcessPipe | Contender::ThreadPipe => {
            let (rx, tx, far) =
                start_pipe_peer(contender, "sink", &[], cpu, stream::serve_streams)?;
            (
                StreamWriter::Pipe {
                    tx,
                    rx,
                    chunk: stream::new_chunk(),
                },
                far,
            )
        }
        Contender::ThreadChannel => {
            let (tx, pieces) = bounded(CHANNEL_BUFFERS / 2);
            let (pool_tx, pool) = bounded(CHANNEL_BUFFERS);
            let (receipt_tx, receipts) = bounded(1);
            for _ in 0..CHANNEL_BUFFERS {
                pool_tx
                    .send(stream::new_chunk())
                    .expect("the pool has room for every buffer");
            }
            let far = Far::thread("sink", cpu, move || {
                Ok(stream::serve_streams_channel(pieces, pool_tx, receipt_tx))
            })?;
            (StreamWriter::Channel { tx, pool, receipts }, far)
        }
    };
    Ok(Pipeline {
        contender,
        writer,
        far,
        block_mib_s: Vec::new(),
        elapsed: Duration::ZERO,
        cpu: Duration::ZERO,
        reads: 0,
        bad: Vec::new(),
    })
}

impl Pipeline {
    /// Streams `total` bytes once, timed, and checks the reader's receipt against `crc`.
    fn run_block(&mut self, total: u64, crc: u32, shutdown: &Shutdown) -> Result<()> {
        shutdown.check()?;
        let pids = self.far.pids();
        let cpu_before = CpuClock::now(&pids)?;
        let start = Instant::now();
        let sent = match &mut self.writer {
            StreamWriter::Pipe { tx, rx, chunk } => {
                stream::send_stream(tx, rx, total, chunk, || shutdown.check().is_ok())
            }
            StreamWriter::Channel { tx, pool, receipts } => {
                stream::send_stream_channel(tx, pool, receipts, total, || shutdown.check().is_ok())
            }
        };
        let elapsed = start.elapsed();
        let receipt = sent.map_err(|err| self.far.broke(err))?;
        self.cpu += CpuClock::since(cpu_before, &pids)?;
        self.elapsed += elapsed;
        self.reads += receipt.reads;
        self.block_mib_s.push(mib_per_s(total, elapsed));
        if (receipt.bytes, receipt.crc) != (total, crc) {
            self.bad.push(format!(
                "{}: {} bytes with CRC {:08x}, expected {total} with {crc:08x}",
                self.contender.label(),
                receipt.bytes,
                receipt.crc
            ));
        }
        Ok(())
    }

    /// Hangs up (EOF between streams ends the reader) and returns how many streams it served,
    /// where a thread can tell us.
    fn finish(self) -> Result<Option<u64>> {
        drop(self.writer);
        self.far.finish()
    }
}

/// Step 2: streaming throughput, contenders alternating block by block.
fn stream(
    report: &mut Report,
    contenders: &[Contender],
    plan: &Plan,
    at: Placed,
    shutdown: &Shutdown,
) -> Result<Blocks> {
    let crc = stream::expected_crc(plan.total);
    let mut pipelines = Vec::new();
    for &c in contenders {
        pipelines.push(start_pipeline(c, at.cpus.peer)?);
    }
    for _ in 0..plan.blocks {
        for p in &mut pipelines {
            p.run_block(plan.total, crc, shutdown)?;
        }
    }

    let writes_per_stream = plan.total.div_ceil(CHUNK as u64);
    let mut blocks = Vec::new();
    let mut bad = Vec::new();
    let mut reads = Vec::new();
    for p in pipelines {
        let c = p.contender;
        let bytes = plan.total * plan.blocks;
        let m = Measurement::value(
            "throughput",
            c.variant(),
            c.mechanism(),
            json!({ "bytes": CHUNK, "pin": at.pin.as_str() }),
            "MiB/s",
            mib_per_s(bytes, p.elapsed),
            cpu_ns_per_op(p.cpu, writes_per_stream * plan.blocks),
        );
        report.measure(m.clone());
        blocks.push((c, p.block_mib_s.clone(), m));
        reads.push(format!("{} reads ({})", p.reads, c.label()));
        bad.extend(p.bad.iter().cloned());
        if let Some(served) = p.finish()? {
            if served != plan.blocks {
                bad.push(format!(
                    "{} served {served} streams of {}",
                    c.label(),
                    plan.blocks
                ));
            }
        }
    }
    let detail = if bad.is_empty() {
        format!(
            "{} streams of {} per contender, length and CRC-32 matched at the far end; \
             {} writes of at most 64 KiB arrived as {} (a pipe keeps no write boundaries; a \
             channel hands over whole buffers)",
            plan.blocks,
            format_bytes(plan.total),
            writes_per_stream * plan.blocks,
            reads.join(", ")
        )
    } else {
        bad.join("; ")
    };
    report.check(
        &format!(
            "every stream arrived whole ({})",
            placement_text(at.pin.as_str())
        ),
        bad.is_empty(),
        detail,
    );
    Ok(blocks)
}

/// Step 3: the classic trap. A reader gets EOF only when every write end is closed, and the
/// parent's own copy of the write end counts.
fn show_eof_needs_every_writer(report: &mut Report) -> Result<()> {
    let (mut reader, writer) = std::io::pipe().context("pipe")?;
    let peer = Peer::spawn("write-hello", &[writer.as_fd()], None, &[])?;
    // The child writes "hello" and exits. We keep `writer` open on purpose: the bug.
    let mut buf = [0u8; 64];
    let first =
        semantics::read_within(&mut reader, &mut buf, HANG_GUARD).context("read the pipe")?;
    peer.finish()?;
    let trapped =
        semantics::read_within(&mut reader, &mut buf, TRAP_WAIT).context("read the pipe")?;
    // The fix: close our copy. Now no write end is left anywhere, and EOF comes at once.
    drop(writer);
    let fixed =
        semantics::read_within(&mut reader, &mut buf, HANG_GUARD).context("read the pipe")?;
    let held = matches!(first, Next::Data(5)) && trapped == Next::Nothing && fixed == Next::Eof;
    report.check(
        "EOF comes only once every write end is closed",
        held,
        format!(
            "the child wrote 5 bytes and exited: {}; with our own copy of the write end still \
             open: {} within {} ms; once we closed it: {}",
            describe(first),
            describe(trapped),
            TRAP_WAIT.as_millis(),
            describe(fixed)
        ),
    );
    Ok(())
}

/// What a guarded read found, for people.
fn describe(next: Next) -> String {
    match next {
        Next::Data(n) => format!("{n} bytes read"),
        Next::Eof => "EOF".to_owned(),
        Next::Nothing => "no EOF".to_owned(),
    }
}

/// Step 4: writing to a pipe whose only reader has gone.
fn show_epipe(report: &mut Report, bytes: usize) -> Result<()> {
    let (reader, mut writer) = std::io::pipe().context("pipe")?;
    let peer = Peer::spawn(
        "read-one",
        &[reader.as_fd()],
        None,
        &["--bytes".to_owned(), bytes.to_string()],
    )?;
    drop(reader); // Only the child may read; our copy would keep the pipe "read" forever.
    let mut msg = vec![0u8; bytes];
    pingpong::fill(&mut msg, 0);
    writer
        .write_all(&msg)
        .context("write to the pipe while the child reads it")?;
    peer.finish()?;
    let ignored = semantics::sigpipe_ignored().context("sigaction(SIGPIPE)")?;
    let after = writer.write_all(&msg);
    let epipe = after.as_ref().err().and_then(std::io::Error::raw_os_error) == Some(libc::EPIPE);
    report.check(
        "writing to a pipe with no reader fails with EPIPE",
        epipe && ignored,
        format!(
            "the child read one message and exited; our next write returned {}; SIGPIPE is {} \
             (Rust ignores it before main, or the write would have killed us)",
            after.map_or_else(|e| format!("{e}"), |()| "success".to_owned()),
            if ignored { "ignored" } else { "NOT ignored" }
        ),
    );
    Ok(())
}

/// Step 5: a FIFO, for processes that share no descriptor.
fn show_fifo(report: &mut Report, shutdown: &Shutdown) -> Result<()> {
    // The FIFO's name lives in a fresh 0700 directory, ledgered, removed on every path out.
    let dir = PrivateDir::create()?;
    let path = dir.path().join("fifo");
    semantics::make_fifo(&path).with_context(|| format!("mkfifo {}", path.display()))?;
    let fifo =
        semantics::open_fifo_reader(&path).with_context(|| format!("open {}", path.display()))?;
    // The child gets no pipe, only the FIFO's path and a liveness pipe so we notice its death.
    let (alive, watch) = liveness().context("pipe (liveness)")?;
    let extra = [
        "--fifo".to_owned(),
        path.display().to_string(),
        "--messages".to_owned(),
        FIFO_MESSAGES.to_string(),
    ];
    let mut peer = Peer::spawn("fifo-writer", &[alive.as_fd()], None, &extra)?;
    drop(alive);
    match semantics::wait_for_writer(&fifo, watch.as_fd(), HANG_GUARD).context("poll the FIFO")? {
        Arrival::Data => {}
        Arrival::WriterGone => return Err(peer.death("it left before writing to the FIFO")),
        Arrival::Timeout => bail!(
            "hang guard: no data on the FIFO after {} s",
            HANG_GUARD.as_secs()
        ),
    }
    shutdown.check()?;
    // Both ends are open: the name has done its job. The pipe lives on without it.
    std::fs::remove_file(&path).with_context(|| format!("unlink {}", path.display()))?;
    semantics::set_blocking(&fifo).context("fcntl(F_SETFL)")?;
    let count = semantics::read_messages(&fifo, HEADER * 2).map_err(|e| peer.death(e))?;
    peer.finish()?;
    report.check(
        "a FIFO joins processes by name",
        count == FIFO_MESSAGES,
        format!(
            "the child opened the FIFO by its path, having inherited no pipe; {count} of \
             {FIFO_MESSAGES} numbered messages arrived in order; the name was unlinked once both \
             ends were open"
        ),
    );
    Ok(())
}

/// Step 6: what a child sees of our memory. We hand it the address of a fresh nonce; it reads
/// its own memory there, then receives the nonce through a pipe and reports both.
fn probe_child_memory() -> Result<(labkit::Verdict, String)> {
    let mut nonce = Nonce::blank();
    let (mut our_rx, mut our_tx, their_rx, their_tx) = pipe_pair()?;
    let mut peer = Peer::spawn(
        "probe",
        &[their_rx.as_fd(), their_tx.as_fd()],
        None,
        &nonce.args(),
    )?;
    drop((their_rx, their_tx)); // The child's now; ours would hide its death from us.
    // Written only now: a copy of our memory made at the child's creation holds zeros.
    nonce.fill().context("read /dev/urandom")?;
    let mut reply = [0u8; PROBE_LEN];
    our_tx
        .write_all(nonce.bytes())
        .and_then(|()| std::io::Read::read_exact(&mut our_rx, &mut reply))
        .map_err(|e| peer.death(e))?;
    peer.finish()?;
    Ok(probe::judge(&nonce, &Probe::decode(&reply), "a pipe"))
}

/// Step 7: the claims, from this run's figures: one finding per placement and measure (the
/// scheduler's placement is shown, not judged), and what the probing child saw.
fn judge_claims(
    report: &mut Report,
    plan: &Plan,
    rounds: &[(Placed, Blocks, Blocks)],
    separate: Option<(labkit::Verdict, String)>,
) {
    let mut summary = format!(
        "{} round trips of {} and {} streams of {} per contender",
        plan.messages,
        format_bytes(plan.bytes as u64),
        plan.blocks,
        format_bytes(plan.total)
    );
    for (at, latency, throughput) in rounds.iter().filter(|r| r.0.pin.judged()) {
        let place = placement_text(at.pin.as_str());
        let (size, total) = (format_bytes(plan.bytes as u64), format_bytes(plan.total));
        for (series, what, unit, better) in [
            (
                latency,
                format!("round trip of {size}, {place}"),
                "ns",
                Better::Lower,
            ),
            (
                throughput,
                format!("stream of {total} in 64 KiB writes, {place}"),
                "MiB/s",
                Better::Higher,
            ),
        ] {
            let Some(([p, t], compares)) = process_vs_channel(series) else {
                continue;
            };
            let test = Test::new(what, unit, better, "faster")
                .favoured("threads over a channel", t)
                .other("processes over pipes", p);
            if better == Better::Lower {
                summary.push_str(&format!("; per round trip on {place}, {}", test.headline()));
            }
            report
                .claim_measured("comm.threads-faster", test, compares)
                .placement = Some(at.pin.as_str().to_owned());
        }
    }
    // A failed check means this run cannot say how the data travelled: no finding either way.
    if let Some((verdict, evidence)) = separate.filter(|_| report.passed()) {
        report.claim_observed("comm.process-needs-ipc", verdict, evidence);
    }
    summary.push_str(if report.passed() {
        "; every message and byte arrived."
    } else {
        "; a check FAILED."
    });
    report.summary = summary;
}

/// The block figures and the measurements of the two contenders the claim sets against each
/// other, processes over a pipe and threads over a channel, if both ran.
fn process_vs_channel(series: &Blocks) -> Option<([&[f64]; 2], [&Measurement; 2])> {
    let find = |c: Contender| series.iter().find(|(k, ..)| *k == c);
    let (_, p, pm) = find(Contender::ProcessPipe)?;
    let (_, t, tm) = find(Contender::ThreadChannel)?;
    Some(([p, t], [pm, tm]))
}

/// The other side of each exchange, when this binary runs as a child (`--role`).
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let mut next_fd = |what: &str| -> Result<OwnedFd> {
        fds.next().with_context(|| format!("no {what} fd passed"))
    };
    let bytes = args.bytes.unwrap_or(BYTES) as usize;
    match args.role.role.as_deref().unwrap_or_default() {
        "echo" => {
            let rx = PipeReader::from(next_fd("read")?);
            let tx = PipeWriter::from(next_fd("write")?);
            pingpong::stream_echo(rx, tx, bytes).context("echo")?;
        }
        "sink" => {
            let rx = PipeReader::from(next_fd("read")?);
            let tx = PipeWriter::from(next_fd("write")?);
            stream::serve_streams(rx, tx).context("read streams")?;
        }
        "write-hello" => {
            let mut tx = PipeWriter::from(next_fd("write")?);
            tx.write_all(b"hello").context("write to the pipe")?;
        }
        "read-one" => {
            let mut rx = PipeReader::from(next_fd("read")?);
            let mut msg = vec![0u8; bytes];
            std::io::Read::read_exact(&mut rx, &mut msg).context("read from the pipe")?;
            pingpong::verify(&msg, 0).context("the message read")?;
        }
        "probe" => {
            let mut rx = PipeReader::from(next_fd("read")?);
            let mut tx = PipeWriter::from(next_fd("write")?);
            let seen = probe::look_and_receive(args.role.probe_addr()?, |b| {
                std::io::Read::read_exact(&mut rx, b)
            })
            .context("read /proc/self/mem, then the pipe")?;
            tx.write_all(&seen.encode()).context("write to the pipe")?;
        }
        "fifo-writer" => {
            // Held until we exit: its closing tells the parent we are gone.
            let _alive = next_fd("liveness")?;
            let path = args
                .fifo
                .context("--fifo is required for the fifo-writer role")?;
            let count = args.messages.unwrap_or(FIFO_MESSAGES);
            semantics::write_messages(&path, count, HEADER * 2)
                .with_context(|| format!("write to {}", path.display()))?;
        }
        other => return Err(usage(format!("unknown role `{other}`"))),
    }
    Ok(Outcome::Passed)
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
