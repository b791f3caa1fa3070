//! # switch: what a context switch costs between processes and between threads
//!
//! **Claim** (from the seed, checked on this machine): `switch.process-costlier`: switching
//! between processes costs more than between threads, since it switches the address space.
//! Beyond the seed, `task.handoff-cheaper`: a hand-off between two async tasks on one runtime
//! thread costs less than a context switch between threads (no switch happens at all).
//!
//! **Steps**
//! 1. [`start_contenders`]: for each placement, two processes and two threads set up to hand
//!    the CPU back and forth, over a pipe (as `perf bench sched pipe` does) and over a futex in
//!    a shared page. With both sides on one CPU (`same`), every hand-off is a context switch: the
//!    round trip is two switches. With the sides on two CPUs (`split`), it is two cross-CPU
//!    wake-ups instead, labelled as such. On one CPU, also two async tasks on one runtime
//!    thread ([`tasks::TaskHandOff`]).
//! 2. [`run_blocks`]: every contender runs `--messages` round trips in alternating blocks after a
//!    warm-up; each round trip is timed, each side counts its own voluntary context switches.
//! 3. [`check_switches`]: on one CPU, each side must switch about once per round trip, or the
//!    figure is not a context switch; the tasks' runtime thread, almost never. (A side that wakes its peer is often preempted by it at
//!    once, an involuntary switch, instead of blocking a moment later, a voluntary one.)
//! 4. [`run_perf_bench`]: if `perf` is installed, `perf bench sched pipe` (processes) and `-T`
//!    (threads), pinned to the same CPU with `taskset`, beside ours.
//! 5. [`judge_claims`]: processes against threads, block by block, per mechanism and
//!    placement: on one CPU (the claim proper, judged only if step 3 saw a switch per hand-off)
//!    and on two CPUs (a cross-CPU wake-up), as separate findings; then [`judge_tasks`]: the
//!    tasks against two threads over a futex, on one CPU.
//!
//! Each contender (our end, its far side, its blocks) is a [`contender::Contender`]; the far
//! side as a process is this binary again, started by [`child::start`], doing [`child::run`].
//!
//! **Run it**: `cargo run --release -p switch` (about two seconds; `--pin each`, the default,
//! measures both placements), `-- --pin same` for the switch cost alone, `-- --json`.

mod child;
mod contender;
mod handoff;
mod perf;
mod tasks;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use labkit::measure::block_sizes;
use labkit::pin::Placement;
use labkit::report::format_ns;
use labkit::signals::Shutdown;
use labkit::{
    Better, CommonArgs, Measurement, Outcome, Pin, PinArgs, Report, RoleArgs, Size, Test, Variant,
};
use serde_json::json;

use contender::{Any, Contender, Finished, Mechanism};
use tasks::TaskHandOff;

/// Round trips per contender: by default, with `--quick`, and the most `--messages` accepts.
const MESSAGES: Size = Size::new(5_000, 300, 10_000_000);
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
    let messages = common.size(args.messages, MESSAGES);
    let blocks = common.blocks().min(messages);
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
    report.note_one_side(common);
    judge_claims(&mut report, &results, switched);
    report.end(common.json)
}

/// Step 1: every placement × mechanism × variant, each with its far side waiting; and, on one
/// CPU, two async tasks on one runtime thread.
fn start_contenders(common: &CommonArgs, placements: &[(Pin, Placement)]) -> Result<Vec<Any>> {
    let mut all = Vec::new();
    for &(pin, placement) in placements {
        for mechanism in [Mechanism::Pipe, Mechanism::Futex] {
            for variant in [Variant::Process, Variant::Thread] {
                if common.wants(variant) {
                    let c = Contender::start(variant, mechanism, pin, placement)?;
                    all.push(Any::Kernel(c));
                }
            }
        }
        if pin == Pin::Same && common.wants(Variant::Task) {
            all.push(Any::Tasks(TaskHandOff::start(placement)?));
        }
    }
    Ok(all)
}

/// Step 2: warm-up, then alternating blocks.
fn run_blocks(all: &mut [Any], messages: u64, blocks: u64, shutdown: &Shutdown) -> Result<()> {
    for c in all.iter_mut() {
        c.warm_up(WARMUP, shutdown)?;
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
    let served_all = all.iter().all(|f| f.theirs.served == f.sent);
    let counts: Vec<String> = all
        .iter()
        .map(|f| format!("{}: {} of {}", f.label, f.theirs.served, f.sent))
        .collect();
    report.check(
        "every hand-off arrived once, in order",
        served_all,
        format!(
            "sequence numbers checked on both sides; {}",
            counts.join("; ")
        ),
    );
    tasks::check_switches(report, all);
    let mut lines = Vec::new();
    let mut ok = true;
    for f in all
        .iter()
        .filter(|f| f.pin == Pin::Same && f.variant != Variant::Task)
    {
        // A side either blocks (a voluntary switch) or, woken peer first, is preempted by it
        // (an involuntary one): either way, one switch per round trip.
        let per_trip = |[vol, invol]: [u64; 2], trips: u64| {
            let t = trips.max(1) as f64;
            ((vol + invol) as f64 / t, vol as f64 / t, invol as f64 / t)
        };
        let ours = per_trip(f.ours, f.timed);
        let theirs = per_trip([f.theirs.voluntary, f.theirs.involuntary], f.theirs.served);
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
    let tasks = judge_tasks(report, all, switched).map_or_else(String::new, |t| format!("; {t}"));
    let judged = if summary.is_empty() {
        "no switch cost judged on one CPU (no run there, or its hand-offs were not one switch each)"
            .to_owned()
    } else {
        format!("one context switch on one CPU: {}", summary.join("; "))
    };
    // The hand-offs are vouched for only when no check failed; `conclude` says if one did.
    let arrived = if report.passed() {
        "; every hand-off arrived"
    } else {
        ""
    };
    report.conclude(judged + &tasks + arrived);
}

/// Beyond the seed: two tasks handing off on one runtime thread against two threads over a
/// futex on one CPU (judged only if those were context switches). One thread runs both tasks,
/// so one CPU is the only placement: the exception to judging each placement, said in the
/// test's words.
fn judge_tasks(report: &mut Report, all: &[Finished], switched: bool) -> Option<String> {
    let find = |v: Variant, m: Mechanism| {
        all.iter()
            .find(|f| f.pin == Pin::Same && f.variant == v && f.mechanism == m)
    };
    let task = find(Variant::Task, Mechanism::Notify)?;
    let thread = find(Variant::Thread, Mechanism::Futex).filter(|_| switched)?;
    let test = Test::new(
        "round trip on one CPU (the tasks share one runtime thread, so one CPU is the only \
         placement judged)",
        "ns",
        Better::Lower,
        "faster",
    )
    .favoured("two async tasks (tokio Notify)", &task.block_p50s)
    .other("two threads over a futex", &thread.block_p50s);
    let (tp, hp) = test.medians();
    report
        .claim_measured(
            "task.handoff-cheaper",
            test,
            [&thread.measurement, &task.measurement],
        )
        .placement = Some(Pin::Same.as_str().to_owned());
    Some(format!(
        "a hand-off between tasks {} vs between threads {}",
        format_ns(tp / 2.0),
        format_ns(hp / 2.0)
    ))
}

#[cfg(test)]
testkit::fuzz_test!(Args);
