//! # semaphore: counting semaphores between processes and between threads
//!
//! **Claim** (from the seed, checked on this machine): `sync.primitives`: semaphores coordinate
//! producers and consumers (here: a bounded buffer that loses, repeats and reorders nothing,
//! between processes and between threads).
//!
//! **Steps**
//! 1. [`wake::measure`]: post → wait → post back, between two processes on unnamed
//!    process-shared semaphores in shared memory (the [`page`]), and between two threads on a
//!    `Mutex` + `Condvar` semaphore (std has none), in alternating blocks: half a round trip is
//!    the wake-up latency.
//! 2. [`buffer::measure`]: a bounded buffer of 64 slots with `empty`, `full` and `lock`
//!    semaphores; `--producers` producers put `--items` numbered items each, one consumer takes
//!    them and checks every producer's sequence. Three ways, alternating: child processes with
//!    unnamed `sem_t`s (`pshared = 1`) in a `memfd` page; child processes with named semaphores
//!    (`sem_open`, `O_EXCL`, 0600, unlinked as soon as every producer has them open); threads
//!    with the `Condvar` semaphore.
//! 3. [`judge_claims`].
//!
//! A dead peer is noticed through its pidfd, never by a timeout: POSIX waits are plain
//! `sem_wait`s, and a [`watchdog`] thread that polls the children's pidfds posts the semaphores
//! when one dies, so the waiter wakes and sees why. Shared semaphores are never destroyed, since
//! a peer may have died mid-wait; the page is just unmapped. The semaphores themselves are in
//! [`sem`], the bounded buffer in [`ring`], the children (pong, producers) in [`child`].
//!
//! **Run it**: `cargo run --release -p semaphore` (about a second), `-- --json`,
//! `-- --producers 4 --items 100000`.

mod buffer;
mod child;
mod page;
mod ring;
mod sem;
mod shared;
mod wake;
mod watchdog;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use labkit::exit::usage;
use labkit::limits::{Ask, check};
use labkit::pin::{PinGuard, Placement};
use labkit::report::{format_ns, placement_text};
use labkit::{CommonArgs, Outcome, PinArgs, Report, RoleArgs, Size, Verdict};

use buffer::Buffered;
use page::Page;
use ring::SLOTS;
use wake::WakeUp;

/// Items per producer: by default, with `--quick`, and the most `--items` accepts.
const ITEMS: Size = Size::new(20_000, 500, 1 << 40);
/// Producers: by default (also with `--quick`), and the most `--producers` accepts (they are
/// numbered in 16 bits).
const PRODUCERS: Size = Size::new(2, 2, 64);
/// Ping-pong round trips per variant, by default and with `--quick`.
const ROUND_TRIPS: u64 = 5_000;
const QUICK_ROUND_TRIPS: u64 = 300;

#[derive(Parser, Debug)]
#[command(
    about = "Counting semaphores: POSIX unnamed and named between processes, Mutex+Condvar between threads.",
    after_help = labkit::examples!(
        "",
        " -- --producers 4 --items 100000",
        " -- --json | jq .checks"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    placing: PinArgs,

    /// Items per producer [default: 20000; --quick: 500; from 1 to 2^40].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, ITEMS.max))]
    items: Option<u64>,

    /// Producers [default: 2; from 1 to 64].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, PRODUCERS.max))]
    producers: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,

    /// This producer's number (internal).
    #[arg(long, hide = true)]
    producer: Option<u64>,

    /// Named semaphores to open: empty, full, lock (internal).
    #[arg(long, hide = true, num_args = 3)]
    named: Vec<String>,
}

fn main() -> ExitCode {
    labkit::dispatch(Args::parse(), |a| &a.role, run, run_child)
}

fn run(args: Args) -> Result<Outcome> {
    let (mut report, shutdown) = labkit::start(env!("CARGO_PKG_NAME"))?;
    let common = &args.common;
    let sides = common.sides();
    let items = common.size(args.items, ITEMS);
    let producers = common.size(args.producers, PRODUCERS);
    // The producers and their consumer, at once.
    check(
        &format!("--producers {producers}"),
        Ask::Tasks(producers + 1),
    )?;
    let round_trips = common.sized(ROUND_TRIPS, QUICK_ROUND_TRIPS);
    let blocks = common.blocks();
    report.param("items", items);
    report.param("producers", producers);
    report.param("slots", SLOTS);
    report.param("blocks", blocks);
    let placements = Placement::each_noted(&mut report, args.placing.pin, "wake-ups")?;

    let page = Page::create()?;
    let mut wakes = Vec::new();
    for (pin, cpus) in placements {
        // The main thread is one side of every ping-pong; the pin is undone after the timing.
        let _pin = PinGuard::pin(cpus.main).context("sched_setaffinity (main thread)")?;
        let sizes = wake::Sizes {
            round_trips,
            blocks,
            sides,
            pin,
            cpus,
        };
        wakes.push(wake::measure(&mut report, &page, &sizes, shutdown)?);
    }
    let sizes = buffer::Sizes {
        producers,
        items,
        blocks,
        sides,
    };
    let buffered = buffer::measure(&mut report, &page, sizes, shutdown)?;
    if common.both_sides() {
        judge_claims(&mut report, &buffered, &wakes);
    } else {
        report.summary = format!(
            "one side only: the bounded buffer {} every item once and in order",
            if buffered.exact {
                "moved"
            } else {
                "did NOT move"
            }
        );
    }
    report.note_one_side(common);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    drop(page); // Unmapped, never sem_destroy'ed: see the header.
    Ok(Outcome::of(&report))
}

/// Step 3: the claim, from what the bounded buffer saw, with the rates and the wake-up
/// latencies measured as its evidence.
fn judge_claims(report: &mut Report, buffered: &Buffered, wakes: &[WakeUp]) {
    // Post-to-wake latency per placement: "one CPU 1.9 us (processes) vs 2.0 us (threads)".
    let wakes: Vec<String> = wakes
        .iter()
        .filter_map(|w| {
            let [Some(p), Some(t)] = w.ns else {
                return None;
            };
            Some(format!(
                "{} {} (processes) vs {} (threads)",
                placement_text(w.pin.as_str()),
                format_ns(p),
                format_ns(t)
            ))
        })
        .collect();
    let wakes = wakes.join(", ");
    let [pshared, named, condvar] = buffered.rates.map(|r| r.unwrap_or(0.0));
    let evidence = format!(
        "a 64-slot bounded buffer {}, between processes on unnamed and named POSIX semaphores \
         ({pshared:.2} and {named:.2} M items/s) and between threads on a Mutex+Condvar \
         semaphore ({condvar:.2} M/s); post-to-wake latency: {wakes}",
        if buffered.exact {
            "lost, repeated and reordered nothing"
        } else {
            "LOST, repeated or reordered items (see the checks)"
        },
    );
    report.claim_observed(
        "sync.primitives",
        if buffered.exact {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        evidence,
    );
    report.conclude(format!(
        "a bounded buffer on counting semaphores, processes and threads: every item once and in \
         order; wake-up (sem_t between processes, Condvar between threads): {wakes}"
    ));
}

/// The child side: this binary again, in the role its parent named (the pong of step 1, or a
/// producer of step 2), on the descriptors it inherited at the numbers `--fd` gives: the shared
/// page first (see [`child::start_pong`]).
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let page = Page::open(fds.next().context("no shared memory fd passed")?)?;
    match args.role.role.as_deref().unwrap_or_default() {
        "pong" => child::pong(&page)?,
        "produce" => {
            let ready = fds.next().context("no ready fd passed")?;
            let go = fds.next().context("no go fd passed")?;
            let producer = args.producer.context("--producer is required")?;
            let items = args.items.unwrap_or(ITEMS.full);
            child::produce(&page, ready.into(), go.into(), producer, items, &args.named)?;
        }
        other => return Err(usage(format!("unknown role `{other}`"))),
    }
    Ok(Outcome::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim follows what was observed: items lost, repeated or reordered make it not
    /// hold, and the evidence says so.
    #[test]
    fn the_claim_follows_what_was_observed() {
        for exact in [true, false] {
            let mut report = Report::new(env!("CARGO_PKG_NAME"));
            let buffered = Buffered {
                exact,
                rates: [Some(1.0); 3],
            };
            judge_claims(&mut report, &buffered, &[]);
            let c = &report.claims[0];
            let expected = if exact {
                Verdict::Holds
            } else {
                Verdict::DoesNotHold
            };
            assert_eq!(c.verdict, expected);
            assert_eq!(c.evidence.contains("LOST"), !exact, "{}", c.evidence);
        }
    }
}

#[cfg(test)]
testkit::fuzz_test!(Args);
