//! # shm: a ring buffer in POSIX shared memory, between processes and between threads
//!
//! **Claims** (from the seed, checked on this machine):
//! * `comm.process-needs-ipc`: processes share memory only when they set it up (`shm_open`,
//!   `mmap(MAP_SHARED)`); a private mapping written by a forked child stays the child's;
//! * `comm.threads-faster`: threads talk faster; here, over the very same ring code, in ordinary
//!   memory, and through a crossbeam channel.
//!
//! **Steps**
//! 1. [`sharing::show_private_vs_shared`]: a forked child writes to a private mapping
//!    (`map_anon`) and to a shared one: the parent sees only the shared write (checked). This
//!    runs first, while this process has a single thread.
//! 2. [`measure::measure`]: for each message size (64 B to 1 MiB, `config.bytes`), round trips
//!    (echoed) and a one-way stream (the far side checks each message and answers the end with
//!    a receipt), in alternating blocks, over three contenders: two processes over two rings in
//!    a POSIX shared-memory object ([`region`]: `shm_open` O_EXCL 0600, the fd inherited by the
//!    re-executed child, the name unlinked at once), two threads over the same ring code in
//!    ordinary memory, two threads over crossbeam channels. Every message carries its sequence
//!    number and a CRC-32 of its payload, both checked at the far end ([`protocol`]).
//! 3. Baselines, in blocks alternating with step 2's: [`baselines::Baselines`], one core's
//!    `memcpy` bandwidth, of blocks that stay in its cache and of buffers larger than the
//!    caches, and with `--pin split` 64 KiB blocks copied from one CPU to the other
//!    ([`baselines::cross_core_copy`]), between the stream blocks of one size; with `--pin
//!    split`, two threads spinning on one atomic ([`baselines::atomic_ping_pong`]) between the
//!    round-trip blocks. The floors and ceilings the ring's figures are read against.
//! 4. [`judge_claims`]: `comm.threads-faster` from the ring between threads against the same
//!    ring between processes, block pair by block pair: the round trip of the smallest size and
//!    the stream of 64 KiB messages (the other sizes are the series the report plots), once per
//!    placement; `comm.process-needs-ipc` from what step 1 saw.
//!
//! Steps 2 and 3 run once per placement: both sides on one CPU, then on two (`--pin each`, the
//! default); `--pin same|split` runs one, `--pin none` leaves it to the scheduler (shown, not
//! judged). Waiting (`--wait`): `block` spins about 10 µs then sleeps on a futex in the shared
//! page (on one CPU it sleeps at once); `spin` never sleeps, and runs on two CPUs only (with
//! `--pin each` it skips one CPU and says so; on one CPU a spinner waits for preemption). CPU
//! per message shows what spinning costs. The ring itself ([`shm::ring`]) and its waits
//! ([`shm::wait`]) are this crate's library; the ring's protocol is model-checked with loom
//! (`cargo xtask ci`).
//!
//! A slot carries its own signal: a 4 B stamp, then the message, in whole cache lines. The
//! consumer spins on the stamp, so a message of up to 60 B arrives with its "ready" in one
//! cache-line transfer; a 64 B message spills 4 bytes into a second line (`params.slot_lines`
//! gives each size's lines). `benches/reference/compare-shm.sh` puts the spinning round trip
//! beside two C threads bouncing one cache line.
//!
//! **Run it**: `cargo run --release -p shm` (about a second), `-- --json`,
//! `-- --pin split --wait spin --bytes 60`.

mod baselines;
mod link;
mod measure;
mod protocol;
mod region;
mod sharing;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use labkit::exit::usage;
use labkit::limits::{Ask, check};
use labkit::pin::{PinGuard, Placement};
use labkit::report::{format_bytes, format_ns, placement_text};
use labkit::{
    Better, CommonArgs, LatencyRecorder, Measurement, Outcome, Pin, PinArgs, Report, RoleArgs,
    Test, Variant,
};
use shm::wait::Mode as WaitMode;

use baselines::{Baselines, stream_size_to_compare};
use measure::{CONTENDERS, Plan, Series, measure};
use protocol::{echo_loop, echo_mode};
use sharing::{Sharing, show_private_vs_shared};

/// Message sizes by default: 64 B to 1 MiB. The smallest `--bytes` holds a receipt (32 B); a
/// message of up to 60 B shares its slot's first cache line with the stamp (see `ring.rs`).
const SIZES: [u64; 4] = [64, 4096, 65536, 1 << 20];
const MIN_BYTES: u64 = 32;
const MAX_BYTES: u64 = 1 << 20;
/// Round trips per size and contender, and bytes per stream, by default and with `--quick`.
const ROUND_TRIPS: u64 = 2_000;
const QUICK_ROUND_TRIPS: u64 = 150;
const STREAM: u64 = 16 << 20;
const QUICK_STREAM: u64 = 1 << 20;
/// Messages per stream block at the most: small messages on one CPU cost a context switch per
/// ring's worth, and 16 MiB of 64 B messages would take seconds to say what 1 MiB says.
const MAX_STREAM_MESSAGES: u64 = 16 << 10;
/// Round trips per size shrink so that no size moves more than this many bytes each way …
const RT_BYTES: u64 = 8 << 20;
/// … but never below this many.
const MIN_ROUND_TRIPS: u64 = 50;
const QUICK_MIN_ROUND_TRIPS: u64 = 10;
/// The buffers of the memcpy baseline through memory: larger than the last-level cache of most
/// machines (32 MiB on this lab's VM), so that the copy runs at the memory's pace; smaller with
/// `--quick`.
const MEMORY_COPY: u64 = 64 << 20;
const QUICK_MEMORY_COPY: u64 = 8 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Wait {
    /// Spin about 10 µs, then sleep on a futex.
    Block,
    /// Spin only: on two CPUs (--pin split, or each, which then skips one CPU).
    Spin,
}

impl Wait {
    /// `--wait`'s value as the Report says it.
    fn name(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::Block => "block",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    about = "A ring buffer in POSIX shared memory between processes vs the same ring and a channel between threads.",
    after_help = labkit::examples!(
        "",
        " -- --bytes 60 --pin split --wait spin",
        " -- --json | jq .claims"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    placing: PinArgs,

    /// One message size instead of 64 B, 4 KiB, 64 KiB and 1 MiB (60 B or less travels in one
    /// cache line with its slot's stamp) [default: all four; from 32 to 1MiB].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(MIN_BYTES, MAX_BYTES))]
    bytes: Option<u64>,

    /// How a side waits for the other: `block` (spin ~10 µs, then a futex) or `spin`.
    #[arg(long, value_enum, default_value_t = Wait::Block)]
    wait: Wait,

    #[command(flatten)]
    role: RoleArgs,
}

fn main() -> ExitCode {
    labkit::dispatch(Args::parse(), |a| &a.role, run, run_child)
}

fn run(args: Args) -> Result<Outcome> {
    let (mut report, shutdown) = labkit::start(env!("CARGO_PKG_NAME"))?;
    let common = &args.common;
    // Not `Placement::each_noted`: the placements follow `--wait` as well as `--pin`, and the
    // Report gives the `--pin` asked for.
    let (placements, left_out) = Placement::each(pin_for(args.wait, args.placing.pin)?)?;
    let sizes: Vec<u64> = args.bytes.map_or_else(|| SIZES.to_vec(), |b| vec![b]);
    // The largest size's region, in /dev/shm and mapped, with its twin for the threads.
    let largest = sizes.iter().max().copied().unwrap_or(MIN_BYTES);
    let flags = format!("--bytes {largest}");
    check(&flags, Ask::Shm(region::len(largest) as u64))?;
    check(&flags, Ask::AddressSpace(2 * region::len(largest) as u64))?;
    note_params(&mut report, &args, &sizes, left_out);

    // Step 1. Forking runs first, while this process has one thread; it is the process side's
    // lesson.
    let sharing = if common.wants(Variant::Process) {
        Some(show_private_vs_shared(&mut report)?)
    } else {
        None
    };
    // Steps 2 and 3, once per placement.
    let (mut series, mut memcpy) = (Vec::new(), Vec::new());
    let rounds = placements.len();
    for (round, (pin, placement)) in placements.into_iter().enumerate() {
        let plan = plan(&args, pin, placement);
        let _pin = PinGuard::pin(placement.main).context("sched_setaffinity (main thread)")?;
        // On two CPUs, the atomic ping-pong is measured block by block beside the rings.
        // (Two threads: the thread side's baseline.)
        let mut atomic = (pin == Pin::Split && plan.sides[1]).then(LatencyRecorder::new);
        // The other baselines, in the last round (two CPUs when both run), beside the streams
        // of the size the summary reads them against.
        let mut baselines = (round + 1 == rounds).then(|| Baselines::new(&plan));
        let beside = stream_size_to_compare(&sizes);
        for &bytes in &sizes {
            let b = baselines.as_mut().filter(|_| bytes == beside);
            let one = measure(&mut report, &plan, bytes, &mut atomic, b, shutdown)?;
            series.push(one);
        }
        if let Some(atomic) = atomic {
            report.measure(baselines::atomic_spin(&atomic, args.wait));
        }
        if let Some(baselines) = baselines {
            memcpy = baselines.report(&mut report);
        }
    }
    report.note_one_side(common);
    judge_claims(&mut report, &series, &memcpy, sharing.as_ref());
    report.end(common.json)
}

/// The run's parameters, and skip checks for what `--pin` and `--wait` leave out (`left_out`:
/// why two CPUs are not used).
fn note_params(report: &mut Report, args: &Args, sizes: &[u64], left_out: Option<String>) {
    report.param("sizes", sizes.to_vec());
    region::note_layout(report, sizes);
    report.param("wait", args.wait.name());
    report.param("pin", args.placing.pin.as_str());
    if let Some(why) = left_out {
        report.skip("round trips and streams on two CPUs", why);
    }
    if args.wait == Wait::Spin && args.placing.pin == Pin::Each {
        report.skip(
            "spinning on one CPU",
            "a spinning side on one CPU waits for the other to be preempted: --wait spin runs \
             on two CPUs only",
        );
    }
    report.param(
        "round_trips",
        args.common.sized(ROUND_TRIPS, QUICK_ROUND_TRIPS),
    );
    report.param("stream_bytes", args.common.sized(STREAM, QUICK_STREAM));
}

/// The placements `--pin` asks for, given `--wait`. Spinning is judged on two CPUs only: on
/// one, a spinning side waits for the other to be preempted, milliseconds per hand-off. By
/// default (`each`) it runs there alone.
fn pin_for(wait: Wait, pin: Pin) -> Result<Pin> {
    match (wait, pin) {
        (Wait::Spin, Pin::Each | Pin::Split) => Ok(Pin::Split),
        (Wait::Spin, other) => Err(usage(format!(
            "--wait spin needs --pin split (or each, which then runs split alone): with \
             --pin {}, a spinning side can wait for the other to be preempted, \
             milliseconds per hand-off",
            other.as_str()
        ))),
        (Wait::Block, pin) => Ok(pin),
    }
}

/// How step 2 runs at one placement: the sizes of `--quick` or the defaults.
fn plan(args: &Args, pin: Pin, placement: Placement) -> Plan {
    let common = &args.common;
    Plan {
        sides: CONTENDERS.map(|(variant, _)| common.wants(variant)),
        round_trips: common.sized(ROUND_TRIPS, QUICK_ROUND_TRIPS),
        min_round_trips: common.sized(MIN_ROUND_TRIPS, QUICK_MIN_ROUND_TRIPS),
        stream: common.sized(STREAM, QUICK_STREAM),
        blocks: common.blocks(),
        memory_copy: common.sized(MEMORY_COPY, QUICK_MEMORY_COPY) as usize,
        mode: wait_mode(args.wait, pin),
        wait: args.wait,
        pin,
        placement,
    }
}

/// How a side waits, from `--wait` and `--pin`: blocking on one CPU sleeps at once, since the
/// other side cannot run while we spin (each hand-off would wait out the spin).
fn wait_mode(wait: Wait, pin: Pin) -> WaitMode {
    match (wait, pin) {
        (Wait::Spin, _) => WaitMode::Spin,
        (Wait::Block, Pin::Same) => WaitMode::Sleep,
        (Wait::Block, _) => WaitMode::Block,
    }
}

/// Step 4: the claims, from the figures steps 1 to 3 returned; and the summary line.
fn judge_claims(
    report: &mut Report,
    series: &[Series],
    memcpy: &[Measurement],
    sharing: Option<&Sharing>,
) {
    // One judged size per measure, as in the other topics: round trips of the smallest message,
    // streams of the size the memcpy baselines run beside. The other sizes are the series the
    // report plots: figures, not findings.
    let sizes: Vec<u64> = series.iter().map(|s| s.bytes).collect();
    let judged = (
        sizes.iter().copied().min().unwrap_or(0),
        stream_size_to_compare(&sizes),
    );
    let mut summary = Vec::new();
    for s in series.iter().filter(|s| s.pin.judged()) {
        summary.extend(judge_threads_faster(report, s, judged));
    }
    // A failed check means the rings may not have carried what they should: no finding then.
    if let Some(sharing) = sharing.filter(|_| report.passed()) {
        let (verdict, evidence) = sharing.verdict();
        report.claim_observed("comm.process-needs-ipc", verdict, evidence);
    }
    summary.extend(stream_against_memcpy(series, memcpy, judged.1));
    let mut line = format!(
        "ring round trip p50, processes over shm vs threads: {}",
        summary.join("; ")
    );
    if report.passed() {
        line.push_str("; every message arrived intact");
    }
    report.conclude(line);
}

/// `comm.threads-faster` at one size and placement, where that size is judged (`round_trip`,
/// `stream`): the ring between threads against the same ring between processes, block pair by
/// block pair. Returns the round trips' medians, for the summary.
fn judge_threads_faster(
    report: &mut Report,
    s: &Series,
    (round_trip, stream): (u64, u64),
) -> Option<String> {
    let [Some(process), Some(thread), _] = &s.figures else {
        return None;
    };
    let (size, place) = (format_bytes(s.bytes), placement_text(s.pin.as_str()));
    let ring_test = |what: String, unit, better, [threads, processes]: [&Vec<f64>; 2]| {
        Test::new(what, unit, better, "faster")
            .favoured("threads", threads)
            .other("processes over shared memory", processes)
    };
    let mut claim = |test, compares| {
        report
            .claim_measured("comm.threads-faster", test, compares)
            .placement = Some(s.pin.as_str().to_owned());
    };
    let mut medians = None;
    if s.bytes == round_trip {
        let what = format!("round trip of {size} through the same ring, {place}");
        let blocks = [&thread.rt_blocks, &process.rt_blocks];
        let test = ring_test(what, "ns", Better::Lower, blocks);
        let (t, p) = test.medians();
        medians = Some(format!(
            "{size} on {place} {} vs {}",
            format_ns(p),
            format_ns(t)
        ));
        claim(test, [&process.round_trip, &thread.round_trip]);
    }
    if s.bytes == stream {
        let what = format!("stream of {size} messages through the same ring, {place}");
        let blocks = [&thread.tp_blocks, &process.tp_blocks];
        let test = ring_test(what, "MiB/s", Better::Higher, blocks);
        claim(test, [&process.throughput, &thread.throughput]);
    }
    medians
}

/// The stream of `bytes` messages between processes against one core's `memcpy`, measured
/// beside it (in the last round of placements), for the summary.
fn stream_against_memcpy(series: &[Series], memcpy: &[Measurement], bytes: u64) -> Option<String> {
    let last = series.last()?;
    let beside = series
        .iter()
        .find(|s| s.pin == last.pin && s.bytes == bytes)?;
    let (Some(stream), [in_cache, in_memory]) = (&beside.figures[0], memcpy) else {
        return None;
    };
    let rate = stream.throughput.value.unwrap_or(0.0);
    let share = |m: &Measurement| 100.0 * rate / m.value.unwrap_or(f64::INFINITY);
    Some(format!(
        "{} stream between processes {rate:.0} MiB/s, {:.0}% of one core's memcpy through \
         memory, {:.0}% of its memcpy in cache",
        format_bytes(bytes),
        share(in_memory),
        share(in_cache)
    ))
}

/// The far side as a child (started by `measure::start_echo`): maps the region it inherited
/// and serves it until STOP.
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    if args.role.role.as_deref() != Some("echo") {
        return Err(usage(format!(
            "unknown role `{}`",
            args.role.role.unwrap_or_default()
        )));
    }
    // The one descriptor passed (`--fd`): the shared-memory object, whose name is already gone.
    let fd = args
        .role
        .take_fds()?
        .into_iter()
        .next()
        .context("no shared-memory fd passed")?;
    let bytes = args.bytes.context("--bytes is required")?;
    let map = region::map(&fd, bytes)?;
    // SAFETY: the parent made the region `region::len(bytes)` long and keeps it mapped; we use
    // its rings the other way round.
    let (inbox, outbox) = unsafe { region::rings(&map, bytes) };
    let mode = wait_mode(args.wait, args.placing.pin);
    // Our parent's death kills us (PR_SET_PDEATHSIG): no liveness check needed on this side.
    echo_loop(&inbox, &outbox, echo_mode(mode), &|| true).context("echo")?;
    Ok(Outcome::Passed)
}

#[cfg(test)]
testkit::fuzz_test!(Args);
