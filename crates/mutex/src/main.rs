//! # mutex: one lock for threads, another for processes, and what happens when a holder dies
//!
//! **Claims** (from the seed, checked on this machine):
//! * `sync.primitives`: locks coordinate access to shared data (here: exact counts under
//!   contention, for threads with `std::sync::Mutex` and for processes with a pthread mutex);
//! * `usecase.isolation`: a process that dies holding a lock is detected and its half-done
//!   update repaired (`EOWNERDEAD`), where a thread that panics only poisons its `Mutex`.
//!
//! Why not `std::sync::Mutex` in shared memory? Its futex is process-private: a waiter in another
//! process would never be woken. Across processes the lock is a `pthread_mutex_t` made
//! `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST` ([`robust`]), initialised in place in a
//! `memfd` mapping and never moved.
//!
//! **Steps**
//! 1. [`measure_uncontended`]: lock + unlock with nobody else around, `std::sync::Mutex` vs the
//!    robust process-shared mutex, in batches, alternating.
//! 2. [`measure_contended`]: 1, 2 and 4 parties (threads, or re-executed processes: see
//!    [`measure::processes`]) each add `--increments` to one counter under the lock,
//!    alternating blocks; the count must be exact.
//! 3. [`death::show_owner_death`]: a child takes the robust mutex, starts an update, says so,
//!    and is SIGKILLed; our next lock gets `EOWNERDEAD`, we finish the update, call
//!    `pthread_mutex_consistent`, and go on. Then the other path: unlocking without
//!    `consistent` leaves the mutex `ENOTRECOVERABLE`.
//! 4. [`death::show_poisoning`]: a thread panics holding a `std::sync::Mutex`: the lock is
//!    poisoned, the next `lock` returns `PoisonError`, and `into_inner` recovers the data.
//! 5. [`judge_claims`].
//!
//! The children (a counting party, a holder that waits to be killed) are this binary again,
//! started by [`child::start`]; what they do is [`child::run`].
//!
//! **Run it**: `cargo run --release -p mutex` (about two seconds), `-- --json`,
//! `-- --parties 8 --increments 100000`.

mod child;
mod death;
mod measure;
mod robust;
mod shared;

use std::process::ExitCode;
use std::time::Duration;

use crate::shared::SharedMemory;
use anyhow::{Context, Result};
use clap::Parser;
use labkit::limits::{Ask, check};
use labkit::measure::cpu_ns_per_op;
use labkit::report::format_ns;
use labkit::signals::Shutdown;
use labkit::{
    CommonArgs, LatencyRecorder, Measurement, Outcome, Report, RoleArgs, Size, Variant, Verdict,
};
use serde_json::json;

use death::Death;
use measure::Contended;
use robust::Guarded;

/// Increments per party: by default, with `--quick`, and the most `--increments` accepts.
const INCREMENTS: Size = Size::new(100_000, 1_000, 100_000_000);
/// The most parties: by default (also with `--quick`), and the most `--parties` accepts.
const PARTIES: Size = Size::new(4, 4, 64);
/// Lock + unlock pairs per timed batch, and batches per block, in the uncontended step.
const BATCH: u64 = 1_000;
const BATCHES: u64 = 40;

#[derive(Parser, Debug)]
#[command(
    about = "std::sync::Mutex between threads vs a robust process-shared pthread mutex between processes.",
    after_help = labkit::examples!(
        "",
        " -- --parties 8 --increments 100000",
        " -- --json | jq .claims"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    /// Increments per party [default: 100000; --quick: 1000; from 1 to 100000000].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, INCREMENTS.max))]
    increments: Option<u64>,

    /// Up to this many parties, doubling from 1 [default: 4; from 1 to 64].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, PARTIES.max))]
    parties: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,

    /// Which shared mutex a `hold` child takes (internal).
    #[arg(long, hide = true)]
    which: Option<String>,
}

/// What lives in the shared page: three independent robust mutexes with their data.
#[repr(C)]
struct Shared {
    /// The counter of steps 1 and 2.
    counter: Guarded,
    /// Step 3: the mutex whose owner dies and which is repaired.
    doomed: Guarded,
    /// Step 3: the mutex whose owner dies and which is never made consistent.
    unrecoverable: Guarded,
}

fn main() -> ExitCode {
    labkit::dispatch(Args::parse(), |a| &a.role, run, child::run)
}

fn run(args: Args) -> Result<Outcome> {
    let (mut report, shutdown) = labkit::start(env!("CARGO_PKG_NAME"))?;
    let common = &args.common;
    let sides = common.sides();
    let p = Parties {
        increments: common.size(args.increments, INCREMENTS),
        max: common.size(args.parties, PARTIES),
        sides,
        blocks: common.blocks(),
    };
    check(&format!("--parties {}", p.max), Ask::Tasks(p.max))?;
    report.param("increments", p.increments);
    report.param("parties", p.max);
    report.param("blocks", p.blocks);

    let memory = SharedMemory::create(std::mem::size_of::<Shared>()).context("shared memory")?;
    let shared: *mut Shared = memory.cast();
    // SAFETY: the mapping is fresh, large enough and page-aligned (checked by `cast`); nobody
    // else has it yet; it stays mapped, unmoved, until `memory` is dropped at the end of `run`.
    let shared: &Shared = unsafe {
        for g in [
            &raw mut (*shared).counter,
            &raw mut (*shared).doomed,
            &raw mut (*shared).unrecoverable,
        ] {
            Guarded::init(g).context("initialise a robust process-shared mutex")?;
        }
        &*shared
    };

    let alone = measure_uncontended(&mut report, &shared.counter, sides, p.blocks, shutdown)?;
    let exact = measure_contended(&mut report, &memory, &shared.counter, p, shutdown)?;
    // Owner death is the process side's lesson, poisoning the thread side's.
    let death = if sides[0] {
        Some(death::show_owner_death(&mut report, &memory, shared)?)
    } else {
        None
    };
    let poison = sides[1]
        .then(|| death::show_poisoning(&mut report))
        .transpose()?;
    if let (Some(death), Some(poison)) = (death, poison) {
        judge_claims(&mut report, &alone, &exact, &death, &poison);
    } else {
        report.summary = format!("one side only: {}", exact.text);
    }
    report.note_one_side(common);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    // The mutexes are not destroyed: a peer may have died holding one. Unmapping is enough.
    drop(memory);
    Ok(Outcome::of(&report))
}

/// Step 1's measurements, kept for the summary (`None` for a side that did not run).
#[derive(Default)]
struct Uncontended {
    std_mutex: Option<Measurement>,
    robust: Option<Measurement>,
}

/// Step 1: lock + unlock alone, in timed batches, alternating the two locks.
fn measure_uncontended(
    report: &mut Report,
    robust: &Guarded,
    sides: [bool; 2],
    blocks: u64,
    shutdown: &Shutdown,
) -> Result<Uncontended> {
    let (std_ns, robust_ns) = measure::lock_unlock(robust, sides, blocks, shutdown)?;
    let config = json!({ "parties": 1, "batch": BATCH });
    let mut measured = |run: bool, variant: Variant, mechanism: &str, lat: &LatencyRecorder| {
        run.then(|| {
            let m = Measurement::histogram(
                "lock_unlock",
                variant,
                mechanism,
                config.clone(),
                lat,
                None,
            );
            report.measure(m.clone());
            m
        })
    };
    let std_mutex = measured(sides[1], Variant::Thread, "std-mutex", &std_ns);
    let robust = measured(sides[0], Variant::Process, "pthread-robust", &robust_ns);
    Ok(Uncontended { std_mutex, robust })
}

/// Step 2's sizes: increments per party, up to how many parties, which sides run, and blocks.
struct Parties {
    increments: u64,
    max: u64,
    sides: [bool; 2],
    blocks: u64,
}

/// Step 2: parties adding to one counter, processes and threads in alternating blocks.
fn measure_contended(
    report: &mut Report,
    memory: &SharedMemory,
    counter: &Guarded,
    p: Parties,
    shutdown: &'static Shutdown,
) -> Result<Seen> {
    let (increments, blocks) = (p.increments, p.blocks);
    let mut all_exact = true;
    let mut lines = Vec::new();
    let mut parties = 1;
    while parties <= p.max {
        let mut runs: [Vec<Contended>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..blocks {
            shutdown.check()?;
            if p.sides[0] {
                runs[0].push(measure::processes(
                    memory, counter, parties, increments, shutdown,
                )?);
            }
            if p.sides[1] {
                runs[1].push(measure::threads(parties, increments, shutdown)?);
            }
        }
        let ops = parties * increments * blocks;
        for (variant, mechanism, runs) in [
            (Variant::Process, "pthread-robust", &runs[0]),
            (Variant::Thread, "std-mutex", &runs[1]),
        ]
        .into_iter()
        .filter(|(_, _, runs)| !runs.is_empty())
        {
            let elapsed: Duration = runs.iter().map(|r| r.elapsed).sum();
            let cpu: Duration = runs.iter().map(|r| r.cpu).sum();
            let exact = runs.iter().all(|r| r.exact);
            all_exact &= exact;
            let rate = ops as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6;
            let config = json!({ "parties": parties, "increments": increments });
            report.measure(Measurement::value(
                "increments",
                variant,
                mechanism,
                config,
                "M/s",
                rate,
                cpu_ns_per_op(cpu, ops),
            ));
            let who = match (variant, parties) {
                (Variant::Process, 1) => "process",
                (Variant::Process, _) => "processes",
                (_, 1) => "thread",
                _ => "threads",
            };
            let exact = if exact { "exact" } else { "NOT exact" };
            lines.push(format!("{parties} {who}: {exact}"));
        }
        parties *= 2;
    }
    let seen = Seen {
        ok: all_exact,
        text: format!(
            "each party added {increments} under the lock, every block; {}",
            lines.join(", ")
        ),
    };
    report.check(
        "every count was exact under contention",
        seen.ok,
        &seen.text,
    );
    Ok(seen)
}

/// An observation: whether it went as the lesson says, and what was seen, in words.
struct Seen {
    ok: bool,
    text: String,
}

/// Step 5: the claims, each decided by what steps 2 to 4 saw, its evidence what they saw.
fn judge_claims(
    report: &mut Report,
    alone: &Uncontended,
    exact: &Seen,
    death: &Death,
    poison: &Seen,
) {
    let p50 = |m: &Option<Measurement>| {
        m.as_ref()
            .and_then(|m| m.p50)
            .map_or_else(|| "-".to_owned(), |v| format_ns(v as f64))
    };
    let (std_ns, robust_ns) = (p50(&alone.std_mutex), p50(&alone.robust));
    let verdict = |ok: bool| {
        if ok {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        }
    };
    report.claim_observed(
        "sync.primitives",
        verdict(exact.ok),
        format!(
            "threads under std::sync::Mutex and processes under a robust process-shared pthread \
             mutex in shared memory: {}",
            exact.text
        ),
    );
    let isolated =
        death.owner_died_seen && death.repaired && death.recovered && death.unrecoverable_seen;
    report.claim_observed(
        "usecase.isolation",
        verdict(isolated && poison.ok),
        format!(
            "a process killed holding the lock: {}; a thread: {}",
            death.seen, poison.text
        ),
    );
    report.conclude(format!(
        "exact counts under contention for threads and processes; uncontended lock+unlock {std_ns} \
         (std Mutex) vs {robust_ns} (robust pthread mutex); a dead holder was recovered via \
         EOWNERDEAD"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each claim follows what was observed: forced the other way, it does not hold, and its
    /// evidence is what was seen.
    #[test]
    fn each_claim_follows_what_was_observed() {
        for ok in [true, false] {
            let seen = |what: &str| Seen {
                ok,
                text: format!("seen: {what}"),
            };
            let death = Death {
                owner_died_seen: true,
                repaired: true,
                recovered: ok,
                unrecoverable_seen: true,
                seen: "seen: death".to_owned(),
            };
            let mut report = Report::new(env!("CARGO_PKG_NAME"));
            let alone = Uncontended::default();
            judge_claims(
                &mut report,
                &alone,
                &seen("counts"),
                &death,
                &seen("poison"),
            );
            for c in &report.claims {
                let expected = if ok {
                    Verdict::Holds
                } else {
                    Verdict::DoesNotHold
                };
                assert_eq!(c.verdict, expected, "{}", c.id);
                assert!(c.evidence.contains("seen: "), "{}", c.evidence);
            }
        }
    }
}

#[cfg(test)]
testkit::fuzz_test!(Args);
