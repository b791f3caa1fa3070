//! # mqueue: POSIX message queues between processes, a bounded channel between threads
//!
//! **Claims** (from the seed, checked on this machine):
//! * `comm.process-needs-ipc`: processes need IPC, here a kernel message queue, to talk;
//! * `comm.threads-faster`: threads talk faster through a channel in their shared memory.
//!
//! **Steps**
//! 1. [`read_limits`]: `msg_max`, `msgsize_max`, `queues_max` from `/proc/sys/fs/mqueue` and the
//!    per-user quota `RLIMIT_MSGQUEUE`; flags beyond them are refused (exit 2), never clamped.
//! 2. [`measure_round_trips`]: `--bytes` messages sent and echoed back: two processes over two
//!    queues (the child inherits the descriptors; the names are unlinked at once) vs two threads
//!    over two crossbeam bounded channels of the same depth, in alternating blocks.
//! 3. [`measure_streams`]: `--messages` messages one way, each checked (sequence and payload)
//!    and the stream's CRC-32 compared at the end; alternating blocks.
//! 4. [`show_semantics`]: message boundaries kept (one send, one receive of exactly that size);
//!    a higher priority overtakes queued lower ones; a full queue opened `O_NONBLOCK` says
//!    `EAGAIN` instead of blocking.
//! 5. [`probe_child_memory`]: a child is handed the address of a fresh nonce in our memory;
//!    it reads its own memory there (`/proc/self/mem`) and finds no nonce, while the same
//!    nonce sent through a queue arrives.
//! 6. [`judge_claims`]: steps 2 and 3, block pair by block pair, decide `comm.threads-faster`
//!    once per placement (they run with both sides on one CPU, then on two; `--pin` narrows
//!    to one, `--pin none` is shown and not judged); step 5 decides `comm.process-needs-ipc`.
//!
//! **Run it**: `cargo run --release -p mqueue` (about a second), `-- --json`, `-- --bytes 4096`.

mod queue;

use std::cell::RefCell;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use crossbeam_channel::bounded;
use labkit::child::{Peer, explain_break};
use labkit::exit::usage;
use labkit::measure::{cpu_ns_per_op, mib_per_s};
use labkit::names::{Kind, reserve};
use labkit::pin::{PinGuard, Placement, pin_thread_to};
use labkit::probe::{self, Nonce, PROBE_LEN, Probe};
use labkit::report::{format_bytes, format_ns, placement_text};
use labkit::signals::Shutdown;
use labkit::{
    Better, CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, Pin, PinArgs, Report,
    RoleArgs, Test, Variant, Verdict,
};
use serde_json::json;

use queue::{Limits, Queue};

/// Message size by default; the smallest holds the sequence number.
const BYTES: u64 = 100;
const MIN_BYTES: u64 = 8;
/// Round trips per variant, and stream messages per block, by default and with `--quick`.
const ROUND_TRIPS: u64 = 5_000;
const QUICK_ROUND_TRIPS: u64 = 300;
const MESSAGES: u64 = 20_000;
const QUICK_MESSAGES: u64 = 1_000;
const MAX_COUNT: u64 = 100_000_000;
/// Alternating blocks (6 reach a 95% interval in one run), and with `--quick` (fewer: the
/// verdicts then say their lower confidence).
const BLOCKS: u64 = 6;
const QUICK_BLOCKS: u64 = 3;
/// Queues one run holds at once (a pair, for round trips and then for streams), for the quota.
const QUEUES_AT_ONCE: u64 = 2;
/// The kernel's bookkeeping per message charged to the quota, on top of the payload (about a
/// `struct msg_msg` and a priority-tree node), for the estimate.
const PER_MESSAGE_OVERHEAD: u64 = 96;

#[derive(Parser, Debug)]
#[command(
    about = "POSIX message queues between processes vs a bounded channel between threads.",
    after_help = labkit::examples!(
        "",
        " -- --bytes 4096 --messages 100000",
        " -- --json | jq .params"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    placing: PinArgs,

    /// Bytes per message [default: 100; from 8 to /proc/sys/fs/mqueue/msgsize_max].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(MIN_BYTES, u32::MAX as u64))]
    bytes: Option<u64>,

    /// Queue depth, in messages [default: /proc/sys/fs/mqueue/msg_max; from 1 to it].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, u32::MAX as u64))]
    depth: Option<u64>,

    /// Messages per stream [default: 20000; --quick: 1000; from 1 to 100000000].
    #[arg(short = 'n', long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_COUNT))]
    messages: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.role.role.is_some() {
        return labkit::finish(concat!(env!("CARGO_PKG_NAME"), " (child)"), run_child(args));
    }
    labkit::finish(env!("CARGO_PKG_NAME"), run(args))
}

/// The sizes of this run, validated against the kernel's limits, and the placement of one
/// round of steps 2 and 3.
#[derive(Clone)]
struct Plan {
    bytes: u64,
    depth: u64,
    round_trips: u64,
    messages: u64,
    blocks: u64,
    /// Which side runs: [process, thread] (both, unless `--variant` picked one).
    sides: [bool; 2],
    pin: Pin,
    cpus: Placement,
}

fn run(args: Args) -> Result<Outcome> {
    let shutdown = labkit::signals::install().context("install SIGINT/SIGTERM handlers")?;
    let common = &args.common;
    let (placements, left_out) = Placement::each(args.placing.pin)?;
    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    let limits = read_limits(&mut report)?;
    let plan = Plan {
        bytes: args.bytes.unwrap_or(BYTES),
        depth: args.depth.unwrap_or(limits.msg_max),
        round_trips: if common.quick {
            QUICK_ROUND_TRIPS
        } else {
            ROUND_TRIPS
        },
        messages: args.messages.unwrap_or(if common.quick {
            QUICK_MESSAGES
        } else {
            MESSAGES
        }),
        blocks: if common.quick { QUICK_BLOCKS } else { BLOCKS },
        sides: [
            common.wants(Variant::Process),
            common.wants(Variant::Thread),
        ],
        // Set per round below.
        pin: Pin::None,
        cpus: Placement::choose(Pin::None)?,
    };
    check_plan(&plan, &limits)?;
    report.param("bytes", plan.bytes);
    report.param("depth", plan.depth);
    report.param("messages", plan.messages);
    report.param("round_trips", plan.round_trips);
    report.param("blocks", plan.blocks);
    report.param("pin", args.placing.pin.as_str());
    let described: Vec<String> = placements.iter().map(|(_, p)| p.describe()).collect();
    report.param("placement", described.join("; "));
    if let Some(why) = left_out {
        report.skip("round trips and streams on two CPUs", why);
    }

    let mut rounds = Vec::new();
    for (pin, cpus) in placements {
        let at = Plan {
            pin,
            cpus,
            ..plan.clone()
        };
        // The main thread is one side of every exchange; the pin is undone after the timing.
        let _pin = PinGuard::pin(cpus.main).context("sched_setaffinity (main thread)")?;
        rounds.push((
            pin,
            measure_round_trips(&mut report, &at, shutdown)?,
            measure_streams(&mut report, &at, shutdown)?,
        ));
    }
    // Queues are the process side's means: their semantics and the probe go with it.
    let separate = if common.wants(Variant::Process) {
        show_semantics(&mut report, &plan)?;
        Some(probe_child_memory(&plan)?)
    } else {
        None
    };
    common.note_one_side(&mut report);
    judge_claims(&mut report, &plan, &rounds, separate);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    Ok(Outcome::of(&report))
}

/// Step 1: the limits, printed as parameters.
fn read_limits(report: &mut Report) -> Result<Limits> {
    let limits = Limits::read().context("read /proc/sys/fs/mqueue and RLIMIT_MSGQUEUE")?;
    report.param("msg_max", limits.msg_max);
    report.param("msgsize_max", limits.msgsize_max);
    report.param("queues_max", limits.queues_max);
    report.param("rlimit_msgqueue", limits.user_bytes);
    Ok(limits)
}

/// Refuses sizes the kernel would refuse, naming the limit and where it is set.
fn check_plan(plan: &Plan, limits: &Limits) -> Result<()> {
    if plan.bytes > limits.msgsize_max {
        return Err(usage(format!(
            "--bytes {} is above the largest message allowed here, {} (/proc/sys/fs/mqueue/msgsize_max)",
            plan.bytes, limits.msgsize_max
        )));
    }
    if plan.depth > limits.msg_max {
        return Err(usage(format!(
            "--depth {} is above the most messages a queue may hold here, {} (/proc/sys/fs/mqueue/msg_max)",
            plan.depth, limits.msg_max
        )));
    }
    let need = QUEUES_AT_ONCE * plan.depth * (plan.bytes + PER_MESSAGE_OVERHEAD);
    if need > limits.user_bytes {
        return Err(usage(format!(
            "{QUEUES_AT_ONCE} queues of {} x {} bytes need about {need} bytes, above this user's \
             quota of {} (RLIMIT_MSGQUEUE, ulimit -q)",
            plan.depth, plan.bytes, limits.user_bytes
        )));
    }
    Ok(())
}

/// The size of the queue back from a child: a message, or a receipt, whichever is larger.
fn back_size(plan: &Plan) -> u64 {
    plan.bytes.max(RECEIPT as u64)
}

/// Two new queues (to the child, and back), created here, and their reservations.
fn queue_pair(plan: &Plan) -> Result<([Queue; 2], Vec<labkit::names::Reservation>)> {
    let mut reservations = Vec::new();
    let mut queues = Vec::new();
    for size in [plan.bytes, back_size(plan)] {
        let mut r = reserve(Kind::Mq)?;
        queues.push(Queue::create(r.name(), plan.depth, size, false)?);
        r.mark_created();
        reservations.push(r);
    }
    let [a, b]: [Queue; 2] = queues
        .try_into()
        .map_err(|_| anyhow::anyhow!("two queues"))?;
    Ok(([a, b], reservations))
}

/// A child in `role` holding the two queues; the names are unlinked once it has them.
fn start_child(role: &str, plan: &Plan, more: &[String]) -> Result<([Queue; 2], RefCell<Peer>)> {
    let ([to_child, from_child], reservations) = queue_pair(plan)?;
    let mut extra = vec!["--bytes".to_owned(), plan.bytes.to_string()];
    extra.extend_from_slice(more);
    let peer = Peer::spawn(
        role,
        &[to_child.as_fd(), from_child.as_fd()],
        plan.cpus.peer,
        &extra,
    )?;
    // The child inherited both descriptors: the names have done their job.
    for mut r in reservations {
        r.unlink().context("mq_unlink")?;
    }
    Ok(([to_child, from_child], RefCell::new(peer)))
}

/// The error for a broken exchange with the child (see `labkit::child::explain_break`).
fn broke(peer: &RefCell<Peer>, err: std::io::Error) -> anyhow::Error {
    explain_break(std::slice::from_mut(&mut *peer.borrow_mut()), err)
}

/// Block figures per variant, [process, thread], and their measurements, for the sides run.
type Blocks = [Option<(Vec<f64>, Measurement)>; 2];

/// Step 2: round trips, processes over queues and threads over channels, alternating.
fn measure_round_trips(
    report: &mut Report,
    plan: &Plan,
    shutdown: &'static Shutdown,
) -> Result<Blocks> {
    let ([to_child, from_child], peer) = start_child("echo", plan, &[])?;
    let alive = || !peer.borrow_mut().died() && shutdown.check().is_ok();
    let (to_thread, thread_in) = bounded::<Box<[u8]>>(plan.depth as usize);
    let (thread_out, from_thread) = bounded::<Box<[u8]>>(plan.depth as usize);
    let bytes = plan.bytes as usize;
    let cpu = plan.cpus.peer;
    let echo = std::thread::spawn(move || {
        pin_thread_to(cpu);
        for msg in thread_in {
            if thread_out.send(msg).is_err() {
                break;
            }
        }
    });
    let pid = vec![peer.borrow().pid()];
    // The parent waits untimed, as C does (a timed wait arms a timer on every sleep). To wake
    // it if the child dies or a signal comes, a watchdog posts an empty message to its queue.
    let exits = vec![
        peer.borrow()
            .exit_fd()
            .context("pidfd_open is needed to watch the child")?
            .try_clone_to_owned()
            .context("dup a pidfd")?,
    ];
    let (stop, stop_watchdog) = std::io::pipe().context("pipe")?;
    let marker = from_child.try_clone().context("dup a queue descriptor")?;
    let watchdog = std::thread::spawn(move || {
        if labkit::child::watch_peers(stop.as_fd(), shutdown, exits) {
            let _ = marker.send_untimed(&[], 0);
        }
    });
    let woken = || {
        std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "the watchdog woke us: the child ended or a signal came",
        )
    };
    let mut lat = [LatencyRecorder::new(), LatencyRecorder::new()];
    let mut block_p50 = [Vec::new(), Vec::new()];
    let mut cpu = [Duration::ZERO; 2];
    // A receive buffer must hold the queue's largest message.
    let (mut sent, mut back) = (vec![0u8; bytes], vec![0u8; back_size(plan) as usize]);
    let mut boxed: Option<Box<[u8]>> = Some(vec![0u8; bytes].into_boxed_slice());
    let mut seq = 0u64;
    let mut intact = true;
    for block in 0..=plan.blocks {
        let n = if block == 0 {
            plan.round_trips / 10
        } else {
            plan.round_trips / plan.blocks
        };
        for v in (0..2).filter(|&v| plan.sides[v]) {
            let watch: &[_] = if v == 0 { &pid } else { &[] };
            let cpu_before = CpuClock::now(watch)?;
            let mut this_block = LatencyRecorder::new();
            for _ in 0..n {
                shutdown.check()?;
                let start = Instant::now();
                if v == 0 {
                    queue::fill(&mut sent, seq);
                    // One message in flight: the queue always has room, a send never waits.
                    to_child
                        .send_untimed(&sent, 0)
                        .map_err(|e| broke(&peer, e))?;
                    let (len, _) = from_child
                        .receive_untimed(&mut back)
                        .map_err(|e| broke(&peer, e))?;
                    if len == 0 {
                        return Err(broke(&peer, woken()));
                    }
                    intact &= len == bytes && back[..len] == sent[..];
                } else {
                    let mut msg = boxed.take().expect("the buffer came back");
                    queue::fill(&mut msg, seq);
                    to_thread.send(msg).context("the echo thread is gone")?;
                    let msg = from_thread.recv().context("the echo thread is gone")?;
                    intact &= queue::is_message(&msg, seq);
                    boxed = Some(msg);
                }
                this_block.record(start.elapsed());
                seq += 1;
            }
            if block > 0 {
                cpu[v] += CpuClock::since(cpu_before, watch)?;
                lat[v].add(&this_block);
                block_p50[v].push(this_block.p50() as f64);
            }
        }
    }
    to_child.send(&[], 0, &alive).map_err(|e| broke(&peer, e))?; // An empty message: stop.
    peer.into_inner().finish()?;
    drop(stop_watchdog);
    watchdog
        .join()
        .map_err(|_| anyhow::anyhow!("the watchdog thread panicked"))?;
    drop(to_thread);
    echo.join()
        .map_err(|_| anyhow::anyhow!("the echo thread panicked"))?;
    let config = json!({ "bytes": plan.bytes, "depth": plan.depth, "pin": plan.pin.as_str() });
    let [p, t] = [(Variant::Process, "mq"), (Variant::Thread, "channel")].map(|(variant, mech)| {
        let v = usize::from(variant == Variant::Thread);
        if !plan.sides[v] {
            return None;
        }
        let m = Measurement::histogram(
            "round_trip",
            variant,
            mech,
            config.clone(),
            &lat[v],
            cpu_ns_per_op(cpu[v], lat[v].len()),
        );
        report.measure(m.clone());
        Some((std::mem::take(&mut block_p50[v]), m))
    });
    report.check(
        &format!(
            "every echoed message came back once, in order, intact ({})",
            placement_text(plan.pin.as_str())
        ),
        intact,
        format!("{seq} round trips, each compared byte for byte with what was sent"),
    );
    Ok([p, t])
}

/// Step 3: one-way streams, every message checked at the far end, alternating.
fn measure_streams(report: &mut Report, plan: &Plan, shutdown: &Shutdown) -> Result<Blocks> {
    let ([to_child, from_child], peer) = start_child("sink", plan, &[])?;
    let alive = || !peer.borrow_mut().died() && shutdown.check().is_ok();
    let bytes = plan.bytes as usize;
    let mut rates = [Vec::new(), Vec::new()];
    let mut cpu = [Duration::ZERO; 2];
    let mut elapsed = [Duration::ZERO; 2];
    let mut bad = Vec::new();
    let pid = vec![peer.borrow().pid()];
    let mut msg = vec![0u8; bytes];
    for _ in 0..plan.blocks {
        for v in (0..2).filter(|&v| plan.sides[v]) {
            shutdown.check()?;
            let watch: &[_] = if v == 0 { &pid } else { &[] };
            let cpu_before = CpuClock::now(watch)?;
            let start = Instant::now();
            let (receipt, expected) = if v == 0 {
                // The sender's own checksum: the far end must report the same.
                let mut crc = crc32fast::Hasher::new();
                for seq in 0..plan.messages {
                    shutdown.check()?;
                    queue::fill(&mut msg, seq);
                    crc.update(&msg);
                    to_child
                        .send(&msg, 0, &alive)
                        .map_err(|e| broke(&peer, e))?;
                }
                to_child.send(&[], 0, &alive).map_err(|e| broke(&peer, e))?; // End of stream.
                let mut r = vec![0u8; back_size(plan) as usize];
                let (n, _) = from_child
                    .receive(&mut r, &alive)
                    .map_err(|e| broke(&peer, e))?;
                let receipt =
                    Receipt::decode(r[..n].try_into().context("a receipt of the wrong size")?);
                (receipt, crc.finalize())
            } else {
                stream_threads(
                    plan.messages,
                    bytes,
                    plan.depth as usize,
                    plan.cpus.peer,
                    shutdown,
                )?
            };
            let took = start.elapsed();
            elapsed[v] += took;
            cpu[v] += CpuClock::since(cpu_before, watch)?;
            rates[v].push(mib_per_s(plan.messages * plan.bytes, took));
            if (receipt.count, receipt.crc, receipt.wrong) != (plan.messages, expected, 0) {
                bad.push(format!("{}: {receipt:?}", ["mq", "channel"][v]));
            }
        }
    }
    to_child
        .send(&[0], 0, &alive)
        .map_err(|e| broke(&peer, e))?; // A one-byte message: stop.
    peer.into_inner().finish()?;
    let total = plan.messages * plan.blocks;
    let config = json!({ "bytes": plan.bytes, "depth": plan.depth, "pin": plan.pin.as_str() });
    let [p, t] = [(Variant::Process, "mq"), (Variant::Thread, "channel")].map(|(variant, mech)| {
        let v = usize::from(variant == Variant::Thread);
        if !plan.sides[v] {
            return None;
        }
        let m = Measurement::value(
            "throughput",
            variant,
            mech,
            config.clone(),
            "MiB/s",
            mib_per_s(total * plan.bytes, elapsed[v]),
            cpu_ns_per_op(cpu[v], total),
        );
        report.measure(m.clone());
        Some((std::mem::take(&mut rates[v]), m))
    });
    report.check(
        &format!(
            "every streamed message arrived once, in order, intact ({})",
            placement_text(plan.pin.as_str())
        ),
        bad.is_empty(),
        if bad.is_empty() {
            format!("{} streams of {} messages per variant; sequence and payload checked per message, CRC-32 per stream", plan.blocks, plan.messages)
        } else {
            bad.join("; ")
        },
    );
    Ok([p, t])
}

/// The size of a receipt on the wire.
const RECEIPT: usize = 24;

/// What the receiving side counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Receipt {
    count: u64,
    crc: u32,
    wrong: u64,
}

impl Receipt {
    fn encode(self) -> [u8; RECEIPT] {
        let mut b = [0u8; RECEIPT];
        b[..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..12].copy_from_slice(&self.crc.to_le_bytes());
        b[16..].copy_from_slice(&self.wrong.to_le_bytes());
        b
    }

    fn decode(b: [u8; RECEIPT]) -> Receipt {
        Receipt {
            count: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            crc: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            wrong: u64::from_le_bytes(b[16..].try_into().expect("8 bytes")),
        }
    }
}

/// Checks one received message and adds it to the receipt.
fn tally(r: &mut Receipt, crc: &mut crc32fast::Hasher, msg: &[u8]) {
    if !queue::is_message(msg, r.count) {
        r.wrong += 1;
    }
    crc.update(msg);
    r.count += 1;
}

/// The thread stream: a producer thread, this thread receiving and checking.
fn stream_threads(
    messages: u64,
    bytes: usize,
    depth: usize,
    cpu: Option<usize>,
    shutdown: &Shutdown,
) -> Result<(Receipt, u32)> {
    let (tx, rx) = bounded::<Box<[u8]>>(depth);
    // Buffers go back to the producer to be reused: no allocation per message.
    let (pool_tx, pool) = bounded::<Box<[u8]>>(depth + 2);
    for _ in 0..depth + 2 {
        pool_tx
            .send(vec![0u8; bytes].into_boxed_slice())
            .expect("the pool has room");
    }
    let producer = std::thread::spawn(move || {
        pin_thread_to(cpu);
        let mut crc = crc32fast::Hasher::new();
        for seq in 0..messages {
            let Ok(mut msg) = pool.recv() else { break };
            queue::fill(&mut msg, seq);
            crc.update(&msg);
            if tx.send(msg).is_err() {
                break;
            }
        }
        crc.finalize()
    });
    let mut r = Receipt {
        count: 0,
        crc: 0,
        wrong: 0,
    };
    let mut crc = crc32fast::Hasher::new();
    for msg in rx.iter() {
        if r.count.is_multiple_of(4096) && shutdown.check().is_err() {
            break; // Dropping `rx` ends the producer; the caller sees the interruption.
        }
        tally(&mut r, &mut crc, &msg);
        let _ = pool_tx.send(msg);
    }
    drop(rx);
    let sent = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))?;
    shutdown.check()?;
    r.crc = crc.finalize();
    Ok((r, sent))
}

/// Step 4: boundaries, priorities, a full queue.
fn show_semantics(report: &mut Report, plan: &Plan) -> Result<()> {
    let mut r = reserve(Kind::Mq)?;
    let q = Queue::create(r.name(), plan.depth, plan.bytes, true)?;
    r.mark_created();
    r.unlink().context("mq_unlink")?; // Our descriptor is all we need.
    let mut buf = vec![0u8; plan.bytes as usize];

    let sizes: Vec<usize> = [1, 3, 8, plan.bytes as usize / 2, plan.bytes as usize]
        .into_iter()
        .filter(|&s| s >= 1)
        .collect();
    let sizes = &sizes[..sizes.len().min(plan.depth as usize)];
    for &size in sizes {
        q.send(&vec![b'x'; size], 0, &|| true)?;
    }
    let mut got = Vec::new();
    while let Some((n, _)) = q.try_receive(&mut buf)? {
        got.push(n);
    }
    report.check(
        "a message queue keeps message boundaries",
        got == sizes,
        format!("sent messages of {sizes:?} bytes; each receive returned exactly one: {got:?}"),
    );

    if plan.depth >= 2 {
        let lows = (plan.depth - 1).min(3);
        for i in 0..lows {
            q.send(&[b'l', i as u8], 0, &|| true)?;
        }
        q.send(b"HIGH", 9, &|| true)?;
        let first = q.try_receive(&mut buf)?;
        let overtook = first == Some((4, 9)) && &buf[..4] == b"HIGH";
        while q.try_receive(&mut buf)?.is_some() {}
        report.check(
            "a higher priority overtakes queued lower ones",
            overtook,
            format!("{lows} messages queued at priority 0, then one at 9: the first receive got {first:?} (length, priority)"),
        );
    } else {
        report.skip(
            "a higher priority overtakes queued lower ones",
            "--depth 1 holds one message",
        );
    }

    let mut accepted = 0;
    while q.try_send(b"fill", 0)? {
        accepted += 1;
        if accepted > plan.depth {
            bail!("the queue accepted more than its depth");
        }
    }
    report.check(
        "a full queue opened O_NONBLOCK says EAGAIN",
        accepted == plan.depth,
        format!("{accepted} sends filled the {}-message queue; the next returned EAGAIN instead of blocking", plan.depth),
    );
    Ok(())
}

/// Step 5: what a child sees of our memory. We hand it the address of a fresh nonce; it reads
/// its own memory there, then receives the nonce through a queue and reports both.
fn probe_child_memory(plan: &Plan) -> Result<(Verdict, String)> {
    let mut nonce = Nonce::blank();
    // Queues sized for the probe's reply, whatever `--bytes` says.
    let sized = Plan {
        bytes: PROBE_LEN as u64,
        ..plan.clone()
    };
    let ([to_child, from_child], peer) = start_child("probe", &sized, &nonce.args())?;
    // Written only now: a copy of our memory made at the child's creation holds zeros.
    nonce.fill().context("read /dev/urandom")?;
    let alive = || !peer.borrow_mut().died();
    let mut reply = [0u8; PROBE_LEN];
    to_child
        .send(nonce.bytes(), 0, &alive)
        .and_then(|()| from_child.receive(&mut reply, &alive))
        .map_err(|e| broke(&peer, e))?;
    peer.into_inner().finish()?;
    Ok(probe::judge(
        &nonce,
        &Probe::decode(&reply),
        "a message queue",
    ))
}

/// Step 6: the claims: one finding per placement and measure, and what the probing child saw.
fn judge_claims(
    report: &mut Report,
    plan: &Plan,
    rounds: &[(Pin, Blocks, Blocks)],
    separate: Option<(Verdict, String)>,
) {
    let mut summary = Vec::new();
    for (pin, rts, tps) in rounds.iter().filter(|r| r.0.judged()) {
        let ([Some(rp), Some(rt)], [Some(tp), Some(tt)]) = (rts, tps) else {
            continue; // One side ran: nothing to compare.
        };
        let place = placement_text(pin.as_str());
        let size = format_bytes(plan.bytes);
        for ((p, t), what, unit, better) in [
            (
                (rp, rt),
                format!("round trip of {size}, {place}"),
                "ns",
                Better::Lower,
            ),
            (
                (tp, tt),
                format!("stream of {size} messages, {place}"),
                "MiB/s",
                Better::Higher,
            ),
        ] {
            let test = Test::new(what, unit, better, "faster")
                .favoured("threads over a channel", &t.0)
                .other("processes over message queues", &p.0);
            if better == Better::Lower {
                let (t, p) = test.medians();
                summary.push(format!(
                    "on {place} {} over message queues between processes vs {} over a channel \
                     between threads",
                    format_ns(p),
                    format_ns(t)
                ));
            }
            report
                .claim_measured("comm.threads-faster", test, [&p.1, &t.1])
                .placement = Some(pin.as_str().to_owned());
        }
    }
    // A failed check means this run cannot say how the data travelled: no finding either way.
    if let Some((verdict, evidence)) = separate.filter(|_| report.passed()) {
        report.claim_observed("comm.process-needs-ipc", verdict, evidence);
    }
    if summary.is_empty() {
        summary.push("placed by the scheduler (shown, not judged)".to_owned());
    }
    report.summary = format!(
        "{}-byte messages, round trip: {}{}",
        plan.bytes,
        summary.join("; "),
        if report.passed() {
            "; boundaries, priorities and EAGAIN as documented."
        } else {
            "; a check FAILED."
        }
    );
}

/// The children: an echo, or a sink that checks streams.
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let inbox = Queue::from_fd(fds.next().context("no inbox fd passed")?);
    let outbox = Queue::from_fd(fds.next().context("no outbox fd passed")?);
    // Big enough for the inbox's largest message (its mq_msgsize), whatever its size.
    let mut buf = vec![0u8; (args.bytes.unwrap_or(BYTES) as usize).max(RECEIPT)];
    // Our parent's death kills us (PR_SET_PDEATHSIG): this side can wait untimed, as C does.
    match args.role.role.as_deref().unwrap_or_default() {
        "echo" => loop {
            let (n, _) = inbox.receive_untimed(&mut buf).context("mq_receive")?;
            if n == 0 {
                break;
            }
            outbox.send_untimed(&buf[..n], 0).context("mq_send")?;
        },
        "probe" => {
            let seen = probe::look_and_receive(args.role.probe_addr()?, |nonce| {
                let (n, _) = inbox.receive_untimed(&mut buf)?;
                // A nonce of the wrong length stays zeros: it did not arrive.
                if let Ok(got) = buf[..n].try_into() {
                    *nonce = got;
                }
                Ok(())
            })
            .context("read /proc/self/mem, then mq_receive")?;
            outbox
                .send_untimed(&seen.encode(), 0)
                .context("mq_send the probe")?;
        }
        "sink" => {
            let mut r = Receipt {
                count: 0,
                crc: 0,
                wrong: 0,
            };
            let mut crc = crc32fast::Hasher::new();
            loop {
                let (n, _) = inbox.receive_untimed(&mut buf).context("mq_receive")?;
                match n {
                    0 => {
                        r.crc = std::mem::replace(&mut crc, crc32fast::Hasher::new()).finalize();
                        outbox
                            .send_untimed(&r.encode(), 0)
                            .context("mq_send the receipt")?;
                        r = Receipt {
                            count: 0,
                            crc: 0,
                            wrong: 0,
                        };
                    }
                    1 => break,
                    _ => tally(&mut r, &mut crc, &buf[..n]),
                }
            }
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
