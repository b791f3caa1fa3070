//! # condvar: waiting for a condition, between threads and between processes
//!
//! **Claim** (from the seed, checked on this machine): `sync.primitives`: condition variables
//! coordinate threads (and, process-shared, processes): every hand-off arrives, and a wait in a
//! predicate loop under the lock never loses a wake-up.
//!
//! **Steps**
//! 1. [`measure_ping_pong`]: two sides take turns through a condition variable: two threads
//!    with `std::sync::Condvar` + `Mutex`, and two processes with a process-shared
//!    `pthread_cond_t` (`CLOCK_MONOTONIC`) + robust process-shared mutex in a `memfd` page, in
//!    alternating blocks. Round-trip latency; every wait in a predicate loop; spurious
//!    wake-ups (woken, predicate still false) counted on both sides and reported as figures.
//! 2. [`show_lost_wakeup`]: the classic bug made deterministic: a waiter checks its flag without
//!    the lock, a handshake makes the notifier set the flag and notify right then, and the
//!    waiter's timed wait runs out: the wake-up was lost. The cure, checking and waiting under
//!    the lock in a loop, wakes every time.
//! 3. [`judge_claims`].
//!
//! A process-shared condvar is never destroyed (a peer may have died waiting on it, and
//! `pthread_cond_destroy` can then hang): the page is unmapped instead.
//!
//! **Run it**: `cargo run --release -p condvar` (about a second), `-- --json`,
//! `-- --messages 100000`.

mod local;
mod lost;
mod pshared;

use std::cell::RefCell;
use std::io::{PipeWriter, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use labkit::child::{Peer, explain_break};
use labkit::exit::usage;
use labkit::measure::cpu_ns_per_op;
use labkit::report::format_ns;
use labkit::shared::SharedMemory;
use labkit::signals::Shutdown;
use labkit::{
    CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, Report, RoleArgs, Variant, Verdict,
};
use serde_json::json;

use local::ThreadTurn;
use pshared::{STOP, Turn, Waits};

/// Round trips per variant by default, and with `--quick`; the most `--messages` accepts.
const MESSAGES: u64 = 5_000;
const QUICK_MESSAGES: u64 = 300;
const MAX_MESSAGES: u64 = 10_000_000;
/// Alternating blocks (6 reach a 95% interval in one run), and with `--quick` (fewer: the
/// verdicts then say their lower confidence).
const BLOCKS: u64 = 6;
const QUICK_BLOCKS: u64 = 3;
/// How long the buggy waiter waits for the wake-up it lost; rounds of the correct version.
const LOST_PATIENCE: Duration = Duration::from_millis(200);
const CURE_ROUNDS: u32 = 100;
const QUICK_CURE_ROUNDS: u32 = 20;
/// The correct waiter's hang guard: reaching it would mean a lost wake-up after all.
const HANG_GUARD: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(
    about = "Condition variables: std Condvar between threads vs a process-shared pthread condvar; the lost wake-up.",
    after_help = labkit::examples!(
        "",
        " -- --messages 100000",
        " -- --json | jq .checks"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    /// Round trips per variant [default: 5000; --quick: 300; from 1 to 10000000].
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
    // [process, thread]: both, unless `--variant` picked one side.
    let sides = [
        common.wants(Variant::Process),
        common.wants(Variant::Thread),
    ];
    let messages = args.messages.unwrap_or(if common.quick {
        QUICK_MESSAGES
    } else {
        MESSAGES
    });
    let blocks = (if common.quick { QUICK_BLOCKS } else { BLOCKS }).min(messages);
    let rounds = if common.quick {
        QUICK_CURE_ROUNDS
    } else {
        CURE_ROUNDS
    };

    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    report.param("messages", messages);
    report.param("blocks", blocks);

    let memory = SharedMemory::create(std::mem::size_of::<Turn>()).context("shared memory")?;
    let turn: *mut Turn = memory.cast();
    // SAFETY: the mapping is fresh, large enough and aligned (checked by `cast`) and unshared
    // until the child starts; the `Turn` is initialised in place and never moved.
    let turn: &Turn = unsafe {
        Turn::init(turn).context("initialise the process-shared condvar")?;
        &*turn
    };
    let arrived = measure_ping_pong(
        &mut report,
        &memory,
        turn,
        [messages, blocks],
        sides,
        shutdown,
    )?;
    // The lost wake-up is shown between threads: the thread side's lesson.
    if sides[1] {
        let (lost, cured) = show_lost_wakeup(&mut report, rounds);
        if sides[0] {
            judge_claims(&mut report, arrived, lost, cured);
        }
    }
    if report.summary.is_empty() {
        report.summary = format!(
            "one side only: every hand-off {}",
            if arrived { "arrived" } else { "did NOT arrive" }
        );
    }
    common.note_one_side(&mut report);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    drop(memory); // Unmapped, never destroyed: see the header.
    Ok(Outcome::of(&report))
}

/// Step 1: a condvar ping-pong, processes and threads in alternating blocks. Returns whether
/// every hand-off arrived.
fn measure_ping_pong(
    report: &mut Report,
    memory: &SharedMemory,
    turn: &Turn,
    [messages, blocks]: [u64; 2],
    sides: [bool; 2],
    shutdown: &Shutdown,
) -> Result<bool> {
    let (mut tally_rx, tally_tx) = std::io::pipe().context("pipe")?;
    let peer = RefCell::new(Peer::spawn(
        "pong",
        &[memory.fd(), tally_tx.as_fd()],
        None,
        &[],
    )?);
    drop(tally_tx); // Only the child may write its tally: its death is our EOF.
    let pids = vec![peer.borrow().pid()];
    let alive = || !peer.borrow_mut().died() && shutdown.check().is_ok();
    let broke = |e: std::io::Error| explain_break(std::slice::from_mut(&mut *peer.borrow_mut()), e);
    let local = ThreadTurn::new();
    let (mut ours, mut theirs_thread) = ([Waits::default(), Waits::default()], Waits::default());
    let mut lat = [LatencyRecorder::new(), LatencyRecorder::new()];
    let mut cpu = [Duration::ZERO; 2];
    let mut sent = 0u64;
    let result = std::thread::scope(|s| -> Result<()> {
        let thread_pong = s.spawn(|| {
            let mut waits = Waits::default();
            let mut i = 0u64;
            while local.wait_for(2 * i + 1, &mut waits) != STOP {
                local.set(2 * i + 2);
                i += 1;
            }
            (i, waits)
        });
        let result = (|| -> Result<()> {
            for block in 0..=blocks {
                let n = if block == 0 {
                    messages / 10
                } else {
                    messages / blocks
                };
                for variant in (0..2).filter(|v| sides[*v]) {
                    let watch: &[_] = if variant == 0 { &pids } else { &[] };
                    let cpu_before = CpuClock::now(watch)?;
                    for k in 0..n {
                        shutdown.check()?;
                        let i = sent + k;
                        let start = Instant::now();
                        if variant == 0 {
                            turn.set(2 * i + 1).map_err(broke)?;
                            turn.wait_for(2 * i + 2, &mut ours[0], &alive)
                                .map_err(broke)?;
                        } else {
                            local.set(2 * i + 1);
                            local.wait_for(2 * i + 2, &mut ours[1]);
                        }
                        if block > 0 {
                            lat[variant].record(start.elapsed());
                        }
                    }
                    if block > 0 {
                        cpu[variant] += CpuClock::since(cpu_before, watch)?;
                    }
                }
                sent += n;
            }
            Ok(())
        })();
        local.set(STOP);
        let (served, waits) = thread_pong
            .join()
            .map_err(|_| anyhow::anyhow!("the pong thread panicked"))?;
        theirs_thread = waits;
        anyhow::ensure!(
            result.is_err() || served == if sides[1] { sent } else { 0 },
            "the pong thread answered {served} of {sent}"
        );
        result
    });
    // Stop the child whatever happened (a dead child simply does not read it).
    let _ = turn.set(STOP);
    result?;
    let mut bytes = [0u8; 24];
    tally_rx
        .read_exact(&mut bytes)
        .map_err(|e| peer.borrow_mut().death(e))?;
    peer.into_inner().finish()?;
    let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let (served, theirs_process) = (
        word(0),
        Waits {
            spurious: word(1),
            timeouts: word(2),
        },
    );

    for (i, (variant, mechanism)) in [
        (Variant::Process, "pthread-cond-pshared"),
        (Variant::Thread, "std-condvar"),
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| sides[*i])
    {
        let per_op = cpu_ns_per_op(cpu[i], lat[i].len());
        report.measure(Measurement::histogram(
            "round_trip",
            variant,
            mechanism,
            json!({}),
            &lat[i],
            per_op,
        ));
    }
    // The child answers only when the process side ran.
    let expected = if sides[0] { sent } else { 0 };
    let arrived = served == expected;
    report.check(
        "every hand-off arrived once, in order",
        arrived,
        format!(
            "{sent} turns each way, sequence-checked in the predicate; the child answered \
             {served} of {expected}"
        ),
    );
    // Counts, not checks: a spurious wake-up is allowed; the predicate loop absorbs it.
    let both = |w: [Waits; 2]| w[0].spurious + w[1].spurious;
    for (_, variant, mechanism, count) in [
        (
            sides[0],
            Variant::Process,
            "pthread-cond-pshared",
            both([ours[0], theirs_process]),
        ),
        (
            sides[1],
            Variant::Thread,
            "std-condvar",
            both([ours[1], theirs_thread]),
        ),
    ]
    .into_iter()
    .filter(|w| w.0)
    {
        let config = json!({ "turns": sent });
        report.measure(Measurement::value(
            "spurious_wakeups",
            variant,
            mechanism,
            config,
            "wake-ups",
            count as f64,
            None,
        ));
    }
    Ok(arrived)
}

/// Step 2: the lost wake-up, and the cure.
fn show_lost_wakeup(report: &mut Report, rounds: u32) -> (bool, bool) {
    let lost = lost::unlocked_check_loses_the_wakeup(LOST_PATIENCE);
    report.check(
        "checking the condition without the lock loses the wake-up",
        lost,
        format!(
            "the waiter saw `false` unlocked; the notifier then set the flag and notified while \
             nobody waited; the waiter's wait then {} after {} ms",
            if lost { "ran out" } else { "did NOT run out" },
            LOST_PATIENCE.as_millis()
        ),
    );
    let missed = lost::locked_check_never_loses_it(rounds, HANG_GUARD);
    report.check(
        "checking and waiting under the lock, in a loop, never loses it",
        missed == 0,
        format!("the same handshake, {rounds} times, with the check under the lock: {missed} lost"),
    );
    (lost, missed == 0)
}

/// Step 3: the claim.
fn judge_claims(report: &mut Report, arrived: bool, lost: bool, cured: bool) {
    let p50 = |k: &str| {
        report
            .find(k)
            .and_then(|m| m.p50)
            .map_or_else(|| "-".to_owned(), |v| format_ns(v as f64))
    };
    let (process, thread) = (
        p50("round_trip/process/pthread-cond-pshared"),
        p50("round_trip/thread/std-condvar"),
    );
    report.claim_observed(
        "sync.primitives",
        if arrived && lost && cured {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        format!(
            "a condition variable {} between threads (std Condvar, round trip {thread}) and \
             between processes (process-shared pthread condvar, {process}); the check made \
             outside the lock {}, and made under the lock, in a loop, it {}",
            if arrived {
                "carried every turn"
            } else {
                "did NOT carry every turn"
            },
            if lost {
                "lost a wake-up"
            } else {
                "lost no wake-up (the race was not shown)"
            },
            if cured {
                "lost none"
            } else {
                "STILL lost some"
            }
        ),
    );
    report.summary = format!(
        "condvar ping-pong round trip {thread} (threads) vs {process} (processes); the lost \
         wake-up shown and cured{}",
        if report.passed() {
            "."
        } else {
            "; a check FAILED."
        }
    );
}

/// The answering side of the process ping-pong.
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    if args.role.role.as_deref() != Some("pong") {
        return Err(usage(format!(
            "unknown role `{}`",
            args.role.role.unwrap_or_default()
        )));
    }
    let mut fds = args.role.take_fds()?.into_iter();
    let memory = SharedMemory::open(fds.next().context("no shared memory fd passed")?)?;
    let mut tally = PipeWriter::from(fds.next().context("no tally fd passed")?);
    // SAFETY: the parent initialised the `Turn` in this mapping before starting us and keeps it
    // mapped and unmoved.
    let turn: &Turn = unsafe { &*memory.cast::<Turn>() };
    let mut waits = Waits::default();
    let mut i = 0u64;
    // Our parent's death kills us (PR_SET_PDEATHSIG): no liveness check needed on this side.
    while turn
        .wait_for(2 * i + 1, &mut waits, &|| true)
        .context("wait for a turn")?
        != STOP
    {
        turn.set(2 * i + 2).context("answer")?;
        i += 1;
    }
    let mut bytes = [0u8; 24];
    for (k, v) in [i, waits.spurious, waits.timeouts].iter().enumerate() {
        bytes[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    tally.write_all(&bytes).context("write the tally")?;
    Ok(Outcome::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim follows what was observed: any observation forced the other way makes it
    /// not hold, and the evidence says which.
    #[test]
    fn the_claim_follows_what_was_observed() {
        let verdict = |arrived, lost, cured| {
            let mut report = Report::new(env!("CARGO_PKG_NAME"));
            judge_claims(&mut report, arrived, lost, cured);
            (report.claims[0].verdict, report.claims[0].evidence.clone())
        };
        assert_eq!(verdict(true, true, true).0, Verdict::Holds);
        for (forced, words) in [
            ((false, true, true), "did NOT carry"),
            ((true, false, true), "race was not shown"),
            ((true, true, false), "STILL lost"),
        ] {
            let (v, evidence) = verdict(forced.0, forced.1, forced.2);
            assert_eq!(v, Verdict::DoesNotHold, "{forced:?}");
            assert!(evidence.contains(words), "{evidence}");
        }
    }
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
