//! # switch: what a context switch costs between processes and between threads
//!
//! **Claim** (from the seed, checked on this machine): `switch.process-costlier`: switching
//! between processes costs more than between threads, since it switches the address space.
//!
//! **Steps**
//! 1. [`start_contenders`]: for each placement, two processes and two threads set up to hand
//!    the CPU back and forth, over a pipe (as `perf bench sched pipe` does) and over a futex in
//!    a shared page. With both sides on one CPU (`same`), every hand-off is a context switch: the
//!    round trip is two switches. With the sides on two CPUs (`split`), it is two cross-CPU
//!    wake-ups instead, labelled as such.
//! 2. [`run_blocks`]: every contender runs `--messages` round trips in alternating blocks after a
//!    warm-up; each round trip is timed, each side counts its own voluntary context switches.
//! 3. [`check_switches`]: on one CPU, each side must switch about once per round trip, or the
//!    figure is not a context switch. (A side that wakes its peer is often preempted by it at
//!    once, an involuntary switch, instead of blocking a moment later, a voluntary one.)
//! 4. [`run_perf_bench`]: if `perf` is installed, `perf bench sched pipe` (processes) and `-T`
//!    (threads), pinned to the same CPU with `taskset`, beside ours.
//! 5. [`judge_claims`]: processes against threads, block by block, per mechanism and
//!    placement: on one CPU (the claim proper, judged only if step 3 saw a switch per hand-off)
//!    and on two CPUs (a cross-CPU wake-up), as separate findings.
//!
//! **Run it**: `cargo run --release -p switch` (about two seconds; `--pin each`, the default,
//! measures both placements), `-- --pin same` for the switch cost alone, `-- --json`.

mod handoff;
mod perf;

use std::io::{PipeReader, PipeWriter};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use labkit::child::Peer;
use labkit::exit::usage;
use labkit::measure::{block_sizes, cpu_ns_per_op};
use labkit::pin::{PinGuard, Placement, pin_current_thread};
use labkit::report::format_ns;
use labkit::signals::Shutdown;
use labkit::{
    Better, CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, Pin, PinArgs, Report,
    RoleArgs, Test, Variant,
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;
use serde_json::json;

use handoff::SharedWord;

/// Round trips per contender by default, and with `--quick`; the most `--messages` accepts.
const MESSAGES: u64 = 5_000;
const QUICK_MESSAGES: u64 = 300;
const MAX_MESSAGES: u64 = 10_000_000;
/// Alternating blocks (6 reach a 95% interval in one run), and with `--quick` (fewer: the
/// verdicts then say their lower confidence).
const BLOCKS: u64 = 6;
const QUICK_BLOCKS: u64 = 3;
/// Untimed round trips per contender first.
const WARMUP: u32 = 200;
/// On one CPU each side must switch (voluntarily or not) about once per round trip.
const SWITCHES_PER_ROUND_TRIP: std::ops::RangeInclusive<f64> = 0.8..=1.5;

#[derive(Parser, Debug)]
#[command(
    about = "Context-switch cost: two processes vs two threads, over a pipe and over a futex.",
    after_help = labkit::examples!(
        "",
        " -- --pin same --messages 100000",
        " -- --json | jq .claims";
        "--pin each (the default) measures both placements, each judged: same (the switch cost) and split (cross-CPU wake-up latency)."
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    placing: PinArgs,

    /// Round trips per contender [default: 5000; --quick: 300; from 1 to 10000000].
    #[arg(short = 'n', long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_MESSAGES))]
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

fn run(args: Args) -> Result<Outcome> {
    let shutdown = labkit::signals::install().context("install SIGINT/SIGTERM handlers")?;
    let common = &args.common;
    let messages = args.messages.unwrap_or(if common.quick {
        QUICK_MESSAGES
    } else {
        MESSAGES
    });
    let blocks = (if common.quick { QUICK_BLOCKS } else { BLOCKS }).min(messages);
    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    report.param("messages", messages);
    report.param("blocks", blocks);
    report.param("pin", args.placing.pin.as_str());

    let (placements, left_out) = Placement::each(args.placing.pin)?;
    if let Some(why) = left_out {
        report.skip("round trips with --pin split", why);
    }
    let mut contenders = start_contenders(common, &placements)?;
    run_blocks(&mut contenders, messages, blocks, shutdown)?;
    let mut results = Vec::new();
    for c in contenders {
        results.push(c.finish(&mut report)?);
    }
    let switched = check_switches(&mut report, &results);
    run_perf_bench(&mut report, &placements, messages, common)?;
    common.note_one_side(&mut report);
    judge_claims(&mut report, &results, switched);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    Ok(Outcome::of(&report))
}

/// What carries the hand-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mechanism {
    Pipe,
    Futex,
}

impl Mechanism {
    fn as_str(self) -> &'static str {
        match self {
            Mechanism::Pipe => "pipe",
            Mechanism::Futex => "futex",
        }
    }
}

/// The far side: a child process (with the pipe it reports on, whose EOF is its death) or a
/// thread. Both report the round trips they served and their voluntary/involuntary switches.
enum Far {
    Process { peer: Peer, report: PipeReader },
    Thread(JoinHandle<std::io::Result<[u64; 3]>>),
}

impl Far {
    fn pids(&self) -> Vec<Pid> {
        match self {
            Far::Process { peer, .. } => vec![peer.pid()],
            Far::Thread(_) => Vec::new(),
        }
    }

    /// Whether the far side is still there (checked only when a futex wait is long).
    fn alive(&self) -> bool {
        match self {
            Far::Process { report, .. } => {
                let mut fds = [PollFd::new(report.as_fd(), PollFlags::empty())];
                // POLLHUP is always reported: every write end is closed, so the child is gone.
                !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
            }
            Far::Thread(h) => !h.is_finished(),
        }
    }

    fn broke(&mut self, err: std::io::Error) -> anyhow::Error {
        match self {
            Far::Process { peer, .. } => {
                labkit::child::explain_break(std::slice::from_mut(peer), err)
            }
            Far::Thread(_) => labkit::child::explain_break(&mut [], err)
                .context("the hand-off with the thread broke"),
        }
    }

    /// The far side's own tally, once it has stopped: `[round trips, voluntary, involuntary]`.
    fn finish(self) -> Result<[u64; 3]> {
        match self {
            Far::Process {
                mut peer,
                mut report,
            } => {
                let mut bytes = [0u8; 24];
                // EOF here means the child died before it could report: say how it died.
                std::io::Read::read_exact(&mut report, &mut bytes)
                    .map_err(|e| labkit::child::explain_break(std::slice::from_mut(&mut peer), e))
                    .context("read the child's tally")?;
                peer.finish()?;
                Ok(decode(bytes))
            }
            Far::Thread(h) => match h.join() {
                Ok(r) => r.context("the far thread failed"),
                Err(_) => bail!("the far thread panicked"),
            },
        }
    }
}

fn encode(t: [u64; 3]) -> [u8; 24] {
    let mut out = [0u8; 24];
    for (i, v) in t.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode(b: [u8; 24]) -> [u64; 3] {
    std::array::from_fn(|i| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes")))
}

/// Our end of the hand-off. (`far` first: fields drop in order, so a child is killed before
/// our ends close, and ends quietly.)
struct Contender {
    variant: Variant,
    mechanism: Mechanism,
    pin: Pin,
    placement: Placement,
    far: Far,
    ends: Ends,
    next: u32,
    latency: LatencyRecorder,
    block: LatencyRecorder,
    block_p50s: Vec<f64>,
    cpu: Duration,
    switches: [u64; 2],
}

enum Ends {
    Pipe { tx: PipeWriter, rx: PipeReader },
    Futex { word: SharedWord },
}

/// Step 1: every placement × mechanism × variant, each with its far side waiting.
fn start_contenders(
    common: &CommonArgs,
    placements: &[(Pin, Placement)],
) -> Result<Vec<Contender>> {
    let mut all = Vec::new();
    for &(pin, placement) in placements {
        for mechanism in [Mechanism::Pipe, Mechanism::Futex] {
            for variant in [Variant::Process, Variant::Thread] {
                if common.wants(variant) {
                    all.push(start(variant, mechanism, pin, placement)?);
                }
            }
        }
    }
    Ok(all)
}

fn start(
    variant: Variant,
    mechanism: Mechanism,
    pin: Pin,
    placement: Placement,
) -> Result<Contender> {
    let cpu = placement.peer;
    let (ends, far) = match mechanism {
        Mechanism::Pipe => {
            let (their_rx, tx) = std::io::pipe().context("pipe")?;
            let (rx, their_tx) = std::io::pipe().context("pipe")?;
            let far = if variant == Variant::Process {
                let (report, report_tx) = std::io::pipe().context("pipe")?;
                let fds = [their_rx.as_fd(), their_tx.as_fd(), report_tx.as_fd()];
                let peer = Peer::spawn("pipe-pong", &fds, cpu, &[])?;
                drop((their_rx, their_tx, report_tx)); // The child has them; ours would hide EOF.
                Far::Process { peer, report }
            } else {
                Far::Thread(spawn_thread(cpu, move || {
                    let before = handoff::switches()?;
                    let served = handoff::pipe_pong(their_rx, their_tx)?;
                    tally(served, before)
                })?)
            };
            (Ends::Pipe { tx, rx }, far)
        }
        Mechanism::Futex => {
            let memfd: OwnedFd = handoff::memfd().context("memfd_create")?;
            let word = SharedWord::map(&memfd).context("mmap the shared page")?;
            let far = if variant == Variant::Process {
                let (report, report_tx) = std::io::pipe().context("pipe")?;
                let peer =
                    Peer::spawn("futex-pong", &[memfd.as_fd(), report_tx.as_fd()], cpu, &[])?;
                drop(report_tx);
                Far::Process { peer, report }
            } else {
                let theirs = SharedWord::map(&memfd).context("mmap the shared page")?;
                Far::Thread(spawn_thread(cpu, move || {
                    let before = handoff::switches()?;
                    // Our pinging side is in this process: it is alive while this thread runs.
                    let served = handoff::futex_pong(theirs.word(), &|| true)?;
                    tally(served, before)
                })?)
            };
            (Ends::Futex { word }, far)
        }
    };
    Ok(Contender {
        variant,
        mechanism,
        pin,
        placement,
        far,
        ends,
        next: 0,
        latency: LatencyRecorder::new(),
        block: LatencyRecorder::new(),
        block_p50s: Vec::new(),
        cpu: Duration::ZERO,
        switches: [0, 0],
    })
}

/// `[served, voluntary, involuntary]` since `before`.
fn tally(served: u32, before: (u64, u64)) -> std::io::Result<[u64; 3]> {
    let after = handoff::switches()?;
    Ok([u64::from(served), after.0 - before.0, after.1 - before.1])
}

fn spawn_thread(
    cpu: Option<usize>,
    work: impl FnOnce() -> std::io::Result<[u64; 3]> + Send + 'static,
) -> Result<JoinHandle<std::io::Result<[u64; 3]>>> {
    std::thread::Builder::new()
        .name("pong".to_owned())
        .spawn(move || {
            if let Some(cpu) = cpu {
                pin_current_thread(cpu)?;
            }
            work()
        })
        .context("spawn the pong thread")
}

impl Contender {
    fn label(&self) -> String {
        format!(
            "{}/{} --pin {}",
            self.variant.as_str(),
            self.mechanism.as_str(),
            self.pin.as_str()
        )
    }

    fn round_trip(&mut self) -> Result<()> {
        let i = self.next;
        let far = &self.far;
        let done = match &mut self.ends {
            Ends::Pipe { tx, rx } => handoff::pipe_round_trip(tx, rx, i),
            Ends::Futex { word } => handoff::futex_round_trip(word.word(), i, &|| far.alive()),
        };
        done.map_err(|e| self.far.broke(e))?;
        self.next += 1;
        Ok(())
    }

    /// `n` timed round trips on this contender's CPU; the block median goes to the verdict.
    fn run_block(&mut self, n: u64, shutdown: &Shutdown) -> Result<()> {
        let _pin = PinGuard::pin(self.placement.main).context("sched_setaffinity (main thread)")?;
        let pids = self.far.pids();
        let cpu_before = CpuClock::now(&pids)?;
        let switches_before = handoff::switches().context("getrusage(RUSAGE_THREAD)")?;
        self.block.reset();
        for _ in 0..n {
            shutdown.check()?;
            let start = Instant::now();
            self.round_trip()?;
            self.block.record(start.elapsed());
        }
        let switches_after = handoff::switches().context("getrusage(RUSAGE_THREAD)")?;
        self.switches[0] += switches_after.0 - switches_before.0;
        self.switches[1] += switches_after.1 - switches_before.1;
        self.cpu += CpuClock::since(cpu_before, &pids)?;
        self.latency.add(&self.block);
        self.block_p50s.push(self.block.p50() as f64);
        Ok(())
    }

    /// Stops the far side, records the measurements, and returns what the checks need.
    fn finish(mut self, report: &mut Report) -> Result<Finished> {
        let label = self.label();
        match &mut self.ends {
            Ends::Pipe { .. } => {}
            Ends::Futex { word } => handoff::futex_stop(word.word()).context("FUTEX_WAKE")?,
        }
        let Contender {
            variant,
            mechanism,
            pin,
            far,
            ends,
            next,
            latency,
            block_p50s,
            cpu,
            switches,
            ..
        } = self;
        drop(ends); // A pipe's far side stops at EOF.
        let far_tally = far.finish()?;
        let timed = latency.len();
        let config = json!({ "pin": pin.as_str() });
        let m = Measurement::histogram(
            "round_trip",
            variant,
            mechanism.as_str(),
            config.clone(),
            &latency,
            cpu_ns_per_op(cpu, timed),
        );
        let per_switch = latency.p50() as f64 / 2.0;
        // Half a round trip: on one CPU, one context switch; on two, one cross-CPU wake-up.
        let name = if pin == Pin::Same {
            "context_switch"
        } else {
            "wake_up"
        };
        report.measure(m.clone());
        report.measure(Measurement::value(
            name,
            variant,
            mechanism.as_str(),
            config,
            "ns",
            per_switch,
            None,
        ));
        Ok(Finished {
            label,
            variant,
            mechanism,
            pin,
            measurement: m,
            block_p50s,
            timed,
            sent: u64::from(next),
            ours: switches,
            theirs: far_tally,
        })
    }
}

/// A contender's figures after it stopped.
struct Finished {
    label: String,
    variant: Variant,
    mechanism: Mechanism,
    pin: Pin,
    measurement: Measurement,
    block_p50s: Vec<f64>,
    timed: u64,
    sent: u64,
    /// Our thread's voluntary and involuntary switches over the timed blocks.
    ours: [u64; 2],
    /// The far side's round trips served and its voluntary and involuntary switches (lifetime).
    theirs: [u64; 3],
}

/// Step 2: warm-up, then alternating blocks.
fn run_blocks(
    all: &mut [Contender],
    messages: u64,
    blocks: u64,
    shutdown: &Shutdown,
) -> Result<()> {
    for c in all.iter_mut() {
        let _pin = PinGuard::pin(c.placement.main).context("sched_setaffinity (main thread)")?;
        for _ in 0..WARMUP {
            shutdown.check()?;
            c.round_trip()?;
        }
    }
    for n in block_sizes(messages, blocks) {
        for c in all.iter_mut() {
            c.run_block(n, shutdown)?;
        }
    }
    Ok(())
}

/// Step 3: every hand-off arrived, and on one CPU each was a context switch on each side.
/// Returns whether the latter held: the claim about switches on one CPU rests on it.
fn check_switches(report: &mut Report, all: &[Finished]) -> bool {
    let served_all = all.iter().all(|f| f.theirs[0] == f.sent);
    let counts: Vec<String> = all
        .iter()
        .map(|f| format!("{}: {} of {}", f.label, f.theirs[0], f.sent))
        .collect();
    report.check(
        "every hand-off arrived once, in order",
        served_all,
        format!(
            "sequence numbers checked on both sides; {}",
            counts.join("; ")
        ),
    );
    let mut lines = Vec::new();
    let mut ok = true;
    for f in all.iter().filter(|f| f.pin == Pin::Same) {
        // A side either blocks (a voluntary switch) or, woken peer first, is preempted by it
        // (an involuntary one): either way, one switch per round trip.
        let per_trip = |[vol, invol]: [u64; 2], trips: u64| {
            let t = trips.max(1) as f64;
            ((vol + invol) as f64 / t, vol as f64 / t, invol as f64 / t)
        };
        let ours = per_trip(f.ours, f.timed);
        let theirs = per_trip([f.theirs[1], f.theirs[2]], f.theirs[0]);
        ok &= SWITCHES_PER_ROUND_TRIP.contains(&ours.0)
            && SWITCHES_PER_ROUND_TRIP.contains(&theirs.0);
        lines.push(format!(
            "{}: {:.2} here ({:.2} voluntary + {:.2} involuntary), {:.2} there ({:.2} + {:.2})",
            f.label, ours.0, ours.1, ours.2, theirs.0, theirs.1, theirs.2
        ));
    }
    if lines.is_empty() {
        report.skip(
            "on one CPU, each hand-off is a context switch",
            "no run with --pin same",
        );
        return false;
    } else {
        report.check(
            "on one CPU, each hand-off is a context switch",
            ok,
            format!(
                "context switches per round trip, each side (getrusage RUSAGE_THREAD), expected \
                 {:.1} to {:.1}: {}",
                SWITCHES_PER_ROUND_TRIP.start(),
                SWITCHES_PER_ROUND_TRIP.end(),
                lines.join("; ")
            ),
        );
    }
    ok
}

/// Step 4: perf's own loop, pinned alike, beside ours.
fn run_perf_bench(
    report: &mut Report,
    placements: &[(Pin, Placement)],
    messages: u64,
    common: &CommonArgs,
) -> Result<()> {
    let name = "perf bench sched pipe beside ours";
    let Some(cpu) = placements
        .iter()
        .find(|(p, _)| *p == Pin::Same)
        .and_then(|(_, pl)| pl.main)
    else {
        report.skip(
            name,
            "perf is run only with both sides on one CPU (--pin same)",
        );
        return Ok(());
    };
    for (variant, threads) in [(Variant::Process, false), (Variant::Thread, true)]
        .into_iter()
        .filter(|(v, _)| common.wants(*v))
    {
        // In a PID namespace of its own, dying with us: see `perf::bench_sched_pipe`.
        let out = match perf::bench_sched_pipe(threads, Some(cpu), messages.max(1000))
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => out,
            Ok(out) => {
                report.skip(
                    name,
                    format!(
                        "unshare --pid … perf bench sched pipe exited with {} (perf, \
                         taskset or a PID namespace is not available, or perf was killed)",
                        out.status
                    ),
                );
                return Ok(());
            }
            Err(e) => {
                report.skip(name, format!("unshare is not available here ({e})"));
                return Ok(());
            }
        };
        let Some(ns) = perf::round_trip_ns(&String::from_utf8_lossy(&out.stdout)) else {
            report.skip(name, "perf bench printed no usecs/op line");
            return Ok(());
        };
        let config = json!({ "pin": "same" });
        report.measure(Measurement::value(
            "round_trip_mean",
            variant,
            "perf-bench-pipe",
            config,
            "ns",
            ns,
            None,
        ));
    }
    // perf's figures stand in the measurements, beside ours; they are a reference, not a check.
    Ok(())
}

/// Step 5: processes against threads, per mechanism and placement. On one CPU a hand-off is a
/// context switch (the claim proper, judged only if step 3 saw one per hand-off); on two CPUs
/// it is a cross-CPU wake-up, judged as a finding of its own.
fn judge_claims(report: &mut Report, all: &[Finished], switched: bool) {
    let mut summary = Vec::new();
    for (pin, mechanism) in [Pin::Same, Pin::Split]
        .into_iter()
        .flat_map(|pin| [(pin, Mechanism::Pipe), (pin, Mechanism::Futex)])
    {
        let find = |v: Variant| {
            all.iter()
                .find(|f| f.pin == pin && f.mechanism == mechanism && f.variant == v)
        };
        let (Some(p), Some(t)) = (find(Variant::Process), find(Variant::Thread)) else {
            continue;
        };
        if pin == Pin::Same && !switched {
            // The precondition failed: these round trips were not two switches each.
            continue;
        }
        let what = match pin {
            Pin::Same => "round trip (two context switches)",
            _ => "round trip (two cross-CPU wake-ups)",
        };
        let test = Test::new(
            format!("{what} over a {}", mechanism.as_str()),
            "ns",
            Better::Lower,
            "faster",
        )
        .favoured("threads", &t.block_p50s)
        .other("processes", &p.block_p50s);
        let (tp, pp) = test.medians();
        if pin == Pin::Same {
            summary.push(format!(
                "{} {} (process) vs {} (thread)",
                mechanism.as_str(),
                format_ns(pp / 2.0),
                format_ns(tp / 2.0)
            ));
        }
        report
            .claim_measured(
                "switch.process-costlier",
                test,
                [&p.measurement, &t.measurement],
            )
            .placement = Some(pin.as_str().to_owned());
    }
    report.summary = if summary.is_empty() {
        "no switch cost judged on one CPU (no run there, or its hand-offs were not one switch each)"
            .to_owned()
    } else {
        format!("one context switch on one CPU: {}", summary.join("; "))
    } + if report.passed() {
        "; every hand-off arrived."
    } else {
        "; a check FAILED."
    };
}

/// The far side of each hand-off, when this binary runs as a child (`--role`).
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let mut next_fd = |what: &str| fds.next().with_context(|| format!("no {what} fd passed"));
    let before = handoff::switches().context("getrusage(RUSAGE_THREAD)")?;
    let (served, report) = match args.role.role.as_deref().unwrap_or_default() {
        "pipe-pong" => {
            let rx = PipeReader::from(next_fd("read")?);
            let tx = PipeWriter::from(next_fd("write")?);
            let report = PipeWriter::from(next_fd("report")?);
            (
                handoff::pipe_pong(rx, tx).context("pipe hand-offs")?,
                report,
            )
        }
        "futex-pong" => {
            let memfd = next_fd("memfd")?;
            let report = PipeWriter::from(next_fd("report")?);
            let word = SharedWord::map(&memfd).context("mmap the shared page")?;
            // The parent's death kills us (PR_SET_PDEATHSIG); no need to watch for it here.
            (
                handoff::futex_pong(word.word(), &|| true).context("futex hand-offs")?,
                report,
            )
        }
        other => return Err(usage(format!("unknown role `{other}`"))),
    };
    let t = tally(served, before).context("getrusage(RUSAGE_THREAD)")?;
    std::io::Write::write_all(&mut &report, &encode(t)).context("write the tally")?;
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
