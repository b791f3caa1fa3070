//! # mqueue: POSIX message queues between processes, a bounded channel between threads
//!
//! **Claims** (from the seed, checked on this machine):
//! * `comm.process-needs-ipc`: processes need IPC, here a kernel message queue, to talk;
//! * `comm.threads-faster`: threads talk faster through a channel in their shared memory.
//!
//! **Steps**
//! 1. [`read_limits`]: `msg_max`, `msgsize_max`, `queues_max` from `/proc/sys/fs/mqueue` and the
//!    per-user quota `RLIMIT_MSGQUEUE`; flags beyond them are refused (exit 2), never clamped.
//! 2. [`round_trip::measure`]: `--bytes` messages sent and echoed back: two processes over two
//!    queues (the child inherits the descriptors; the names are unlinked at once: see
//!    [`child::Child::start`]) vs two threads over two crossbeam bounded channels of the same
//!    depth, in alternating blocks.
//! 3. [`stream::measure`]: `--messages` messages one way, each checked (sequence and payload)
//!    and the stream's CRC-32 compared at the end; alternating blocks.
//! 4. [`semantics::show`]: message boundaries kept (one send, one receive of exactly that
//!    size); a higher priority overtakes queued lower ones; a full queue opened `O_NONBLOCK`
//!    says `EAGAIN` instead of blocking.
//! 5. [`probe_child_memory`]: a child is handed the address of a fresh nonce in our memory;
//!    it reads its own memory there (`/proc/self/mem`) and finds no nonce, while the same
//!    nonce sent through a queue arrives.
//! 6. [`judge_claims`]: steps 2 and 3, block pair by block pair, decide `comm.threads-faster`
//!    once per placement (they run with both sides on one CPU, then on two; `--pin` narrows
//!    to one, `--pin none` is shown and not judged); step 5 decides `comm.process-needs-ipc`.
//!
//! The queues themselves are in [`queue`]; the children's side (echo, sink, probe) in [`child`],
//! and what the two sides say to each other in [`protocol`].
//!
//! **Run it**: `cargo run --release -p mqueue` (about a second), `-- --json`, `-- --bytes 4096`.

mod child;
mod nonce;
mod protocol;
mod queue;
mod round_trip;
mod semantics;
mod stream;

use std::process::ExitCode;

use crate::nonce::{self as probe, Nonce, PROBE_LEN, Probe};
use anyhow::{Context, Result};
use clap::Parser;
use labkit::exit::usage;
use labkit::pin::{PinGuard, Placement};
use labkit::report::{format_bytes, format_ns, placement_text};
use labkit::{
    Better, CommonArgs, Measurement, Outcome, Pin, PinArgs, Report, RoleArgs, Size, Test, Variant,
    Verdict,
};
use serde_json::{Value, json};

use child::Child;
use queue::{Limits, Queue};

/// Message size by default, and the most `--bytes` parses (the kernel's `msgsize_max` is the
/// real limit, checked once read).
const BYTES: Size = Size::new(100, 100, u32::MAX as u64);
/// The smallest message: it holds the sequence number.
const MIN_BYTES: u64 = 8;
/// Round trips per variant, by default and with `--quick`.
const ROUND_TRIPS: u64 = 5_000;
const QUICK_ROUND_TRIPS: u64 = 300;
/// Stream messages per block: by default, with `--quick`, and the most `--messages` accepts.
const MESSAGES: Size = Size::new(20_000, 1_000, 100_000_000);
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
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(MIN_BYTES, BYTES.max))]
    bytes: Option<u64>,

    /// Queue depth, in messages [default: /proc/sys/fs/mqueue/msg_max; from 1 to it].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, u32::MAX as u64))]
    depth: Option<u64>,

    /// Messages per stream [default: 20000; --quick: 1000; from 1 to 100000000].
    #[arg(short = 'n', long, value_name = "N", value_parser = labkit::cli::bounded(1, MESSAGES.max))]
    messages: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,
}

fn main() -> ExitCode {
    labkit::dispatch(Args::parse(), |a| &a.role, run, run_child)
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

impl Plan {
    /// The sides this run measures, as indexes into [process, thread].
    fn running(&self) -> impl Iterator<Item = usize> {
        (0..2).filter(|&v| self.sides[v])
    }

    /// The configuration every measurement of this round carries.
    fn config(&self) -> Value {
        json!({ "bytes": self.bytes, "depth": self.depth, "pin": self.pin.as_str() })
    }
}

fn run(args: Args) -> Result<Outcome> {
    let (mut report, shutdown) = labkit::start(env!("CARGO_PKG_NAME"))?;
    let common = &args.common;
    // First, so that a `--pin` this machine cannot give is refused before any limit is read.
    let what = "round trips and streams";
    let placements = Placement::each_noted(&mut report, args.placing.pin, what)?;
    let limits = read_limits(&mut report)?;
    let plan = Plan {
        bytes: common.size(args.bytes, BYTES),
        depth: args.depth.unwrap_or(limits.msg_max),
        round_trips: common.sized(ROUND_TRIPS, QUICK_ROUND_TRIPS),
        messages: common.size(args.messages, MESSAGES),
        blocks: common.blocks(),
        sides: common.sides(),
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

    let mut rounds = Vec::new();
    for (pin, cpus) in placements {
        let at = Plan {
            pin,
            cpus,
            ..plan.clone()
        };
        // The main thread is one side of every exchange; the pin is undone after the timing.
        let _pin = PinGuard::pin(cpus.main).context("sched_setaffinity (main thread)")?;
        rounds.push(Round {
            pin,
            round_trips: round_trip::measure(&mut report, &at, shutdown)?,
            streams: stream::measure(&mut report, &at, shutdown)?,
        });
    }
    // Queues are the process side's means: their semantics and the probe go with it.
    let separate = if common.wants(Variant::Process) {
        semantics::show(&mut report, &plan)?;
        Some(probe_child_memory(&plan)?)
    } else {
        None
    };
    report.note_one_side(common);
    judge_claims(&mut report, &plan, &rounds, separate);
    report.end(common.json)
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

/// Block figures per variant, [process, thread], and their measurements, for the sides run.
type Blocks = [Option<(Vec<f64>, Measurement)>; 2];

/// The two contenders, [process, thread], by what they talk through.
const CONTENDERS: [(Variant, &str); 2] = [(Variant::Process, "mq"), (Variant::Thread, "channel")];

/// Writes one measurement per side that ran (`measure(variant, mechanism, side)`) into the
/// Report, and keeps a copy with that side's block `figures` for [`judge_claims`].
fn record(
    report: &mut Report,
    plan: &Plan,
    figures: [Vec<f64>; 2],
    measure: impl Fn(Variant, &str, usize) -> Measurement,
) -> Blocks {
    let mut kept = [None, None];
    for (v, figures) in figures.into_iter().enumerate() {
        if plan.sides[v] {
            let (variant, mechanism) = CONTENDERS[v];
            let m = measure(variant, mechanism, v);
            report.measure(m.clone());
            kept[v] = Some((figures, m));
        }
    }
    kept
}

/// One placement's figures: steps 2 and 3.
struct Round {
    pin: Pin,
    round_trips: Blocks,
    streams: Blocks,
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
    let child = Child::start("probe", &sized, &nonce.args())?;
    // Written only now: a copy of our memory made at the child's creation holds zeros.
    nonce.fill().context("read /dev/urandom")?;
    let alive = || child.alive();
    let mut reply = [0u8; PROBE_LEN];
    child
        .to
        .send(nonce.bytes(), 0, &alive)
        .and_then(|()| child.from.receive(&mut reply, &alive))
        .map_err(|e| child.broke(e))?;
    child.finish()?;
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
    rounds: &[Round],
    separate: Option<(Verdict, String)>,
) {
    let mut summary = Vec::new();
    for round in rounds.iter().filter(|r| r.pin.judged()) {
        let ([Some(rp), Some(rt)], [Some(sp), Some(st)]) = (&round.round_trips, &round.streams)
        else {
            continue; // One side ran: nothing to compare.
        };
        let place = placement_text(round.pin.as_str());
        let size = format_bytes(plan.bytes);
        for ((p, t), what, unit, better) in [
            (
                (rp, rt),
                format!("round trip of {size}, {place}"),
                "ns",
                Better::Lower,
            ),
            (
                (sp, st),
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
                .placement = Some(round.pin.as_str().to_owned());
        }
    }
    // A failed check means this run cannot say how the data travelled: no finding either way.
    if let Some((verdict, evidence)) = separate.filter(|_| report.passed()) {
        report.claim_observed("comm.process-needs-ipc", verdict, evidence);
    }
    if summary.is_empty() {
        summary.push("placed by the scheduler (shown, not judged)".to_owned());
    }
    let mut line = format!(
        "{}-byte messages, round trip: {}",
        plan.bytes,
        summary.join("; ")
    );
    if report.passed() {
        line.push_str("; boundaries, priorities and EAGAIN as documented");
    }
    report.conclude(line);
}

/// The child side: this binary again, in the role its parent named (an echo, a sink that
/// checks streams, or a probe), on the two queue descriptors it inherited at the numbers
/// `--fd` gives (see [`child::Child::start`]).
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let inbox = Queue::from_fd(fds.next().context("no inbox fd passed")?);
    let outbox = Queue::from_fd(fds.next().context("no outbox fd passed")?);
    // Big enough for the inbox's largest message (its mq_msgsize), whatever its size.
    let bytes = args.common.size(args.bytes, BYTES) as usize;
    let mut buf = vec![0u8; bytes.max(protocol::RECEIPT)];
    match args.role.role.as_deref().unwrap_or_default() {
        "echo" => child::echo(&inbox, &outbox, &mut buf)?,
        "sink" => child::sink(&inbox, &outbox, &mut buf)?,
        "probe" => child::probe(&inbox, &outbox, &mut buf, args.role.probe_addr()?)?,
        other => return Err(usage(format!("unknown role `{other}`"))),
    }
    Ok(Outcome::Passed)
}

#[cfg(test)]
testkit::fuzz_test!(Args);
