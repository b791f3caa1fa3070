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
//!    alternating blocks ([`pingpong::run`]; the other process is this binary again, started
//!    by [`child::start`]). Round-trip latency; every wait in a predicate loop; spurious
//!    wake-ups (woken, predicate still false) counted on both sides and reported as figures.
//! 2. [`show_lost_wakeup`]: the classic bug made deterministic: a waiter checks its flag without
//!    the lock, a handshake makes the notifier set the flag and notify right then, and the
//!    waiter's timed wait runs out: the wake-up was lost. The cure, checking and waiting under
//!    the lock in a loop, wakes every time.
//! 3. [`judge_claims`]: `sync.primitives` holds when every hand-off of step 1 arrived and
//!    step 2 showed both the lost wake-up and its cure.
//!
//! A process-shared condvar is never destroyed (a peer may have died waiting on it, and
//! `pthread_cond_destroy` can then hang): the page is unmapped instead.
//!
//! **Run it**: `cargo run --release -p condvar` (about a second), `-- --json`,
//! `-- --messages 100000`.

mod child;
mod local;
mod lost;
mod pingpong;
mod pshared;
mod shared;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use labkit::report::format_ns;
use labkit::signals::Shutdown;
use labkit::{CommonArgs, Outcome, Report, RoleArgs, Size, Variant, Verdict};

use pingpong::{PingPong, Side};

/// Round trips per variant: by default, with `--quick`, and the most `--messages` accepts.
const MESSAGES: Size = Size::new(5_000, 300, 10_000_000);
/// How long the buggy waiter waits for the wake-up it lost; rounds of the correct version.
const LOST_PATIENCE: Duration = Duration::from_millis(200);
const CURE_ROUNDS: u64 = 100;
const QUICK_CURE_ROUNDS: u64 = 20;
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
    #[arg(short = 'n', long, value_name = "N", value_parser = labkit::cli::bounded(1, MESSAGES.max))]
    messages: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,
}

fn main() -> ExitCode {
    labkit::dispatch(Args::parse(), |a| &a.role, run, child::run)
}

fn run(args: Args) -> Result<Outcome> {
    let (mut report, shutdown) = labkit::start(env!("CARGO_PKG_NAME"))?;
    let common = &args.common;
    // Both sides, unless `--variant` picked one.
    let sides: Vec<Side> = (Side::BOTH.into_iter())
        .filter(|s| common.wants(s.variant()))
        .collect();
    let messages = common.size(args.messages, MESSAGES);
    let blocks = common.blocks().min(messages);
    report.param("messages", messages);
    report.param("blocks", blocks);

    let ping = measure_ping_pong(&mut report, &sides, [messages, blocks], shutdown)?;
    // The lost wake-up is shown between threads: the thread side's lesson.
    if common.wants(Variant::Thread) {
        let rounds = common.sized(CURE_ROUNDS, QUICK_CURE_ROUNDS);
        let (lost, cured) = show_lost_wakeup(&mut report, rounds)?;
        if common.both_sides() {
            judge_claims(&mut report, &ping, lost, cured);
        }
    }
    if report.summary.is_empty() {
        report.summary = format!(
            "one side only: every hand-off {}",
            if ping.arrived() {
                "arrived"
            } else {
                "did NOT arrive"
            }
        );
    }
    report.note_one_side(common);
    report.end(common.json)
}

/// Step 1: a condvar ping-pong, processes and threads in alternating blocks
/// ([`pingpong::run`]), written into the Report with the check that every hand-off arrived.
fn measure_ping_pong(
    report: &mut Report,
    sides: &[Side],
    [messages, blocks]: [u64; 2],
    shutdown: &Shutdown,
) -> Result<PingPong> {
    let ping = pingpong::run(sides, messages, blocks, shutdown)?;
    for f in &ping.figures {
        report.measure(f.round_trip.clone());
    }
    let (sent, served, expected) = (ping.sent, ping.served, ping.expected);
    report.check(
        "every hand-off arrived once, in order",
        ping.arrived(),
        format!(
            "{sent} turns each way, sequence-checked in the predicate; the child answered \
             {served} of {expected}"
        ),
    );
    // Counts, not checks: a spurious wake-up is allowed; the predicate loop absorbs it.
    for f in &ping.figures {
        report.measure(f.spurious_wakeups.clone());
    }
    Ok(ping)
}

/// Step 2: the lost wake-up, and the cure.
fn show_lost_wakeup(report: &mut Report, rounds: u64) -> Result<(bool, bool)> {
    let lost = lost::unlocked_check_loses_the_wakeup(LOST_PATIENCE)?;
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
    let missed = lost::locked_check_never_loses_it(rounds, HANG_GUARD)?;
    report.check(
        "checking and waiting under the lock, in a loop, never loses it",
        missed == 0,
        format!("the same handshake, {rounds} times, with the check under the lock: {missed} lost"),
    );
    Ok((lost, missed == 0))
}

/// Step 3: the claim, from what steps 1 and 2 observed, quoting step 1's round trips.
fn judge_claims(report: &mut Report, ping: &PingPong, lost: bool, cured: bool) {
    let p50 = |side| (ping.p50_ns(side)).map_or_else(|| "-".to_owned(), |v| format_ns(v as f64));
    let (process, thread) = (p50(Side::Process), p50(Side::Thread));
    let arrived = ping.arrived();
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
    report.conclude(format!(
        "condvar ping-pong round trip {thread} (threads) vs {process} (processes); the lost \
         wake-up shown and cured"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim follows what was observed: any observation forced the other way makes it
    /// not hold, and the evidence says which.
    #[test]
    fn the_claim_follows_what_was_observed() {
        let verdict = |arrived: bool, lost, cured| {
            let mut report = Report::new(env!("CARGO_PKG_NAME"));
            let ping = PingPong {
                sent: 300,
                served: if arrived { 300 } else { 299 },
                expected: 300,
                figures: Vec::new(),
            };
            judge_claims(&mut report, &ping, lost, cured);
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
testkit::fuzz_test!(Args);
