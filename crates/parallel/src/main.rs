//! # parallel: processes and threads both use every core
//!
//! **Claims** (from the seed, checked on this machine):
//! * `concurrency.both-parallel`: processes and threads both run in parallel on different cores;
//! * `usecase.shared-data`: threads suit work that shares data and needs fast communication.
//!
//! **Steps**
//! 1. [`measure_job`]: one CPU-bound job (count and sum the primes below `--limit`) run
//!    serially, on a rayon pool, on scoped threads, and on forked worker processes, for 1 to
//!    `--workers` workers, all in alternating blocks after a warm-up round. Every run must give
//!    the same result.
//! 2. [`measure_small_job`]: the same comparison for a job 100 times smaller, where handing
//!    out the work and gathering the results is most of the cost, like with like: workers
//!    created for each job (scoped threads, forked processes) and workers created once before
//!    the jobs (a thread pool fed over channels, a pool of worker processes fed over pipes:
//!    [`child::ProcessPool`]).
//! 3. [`judge_claims`]: speed-up against the serial run, per block pair; threads against
//!    processes on the small job, pool against pool and per job against per job.
//!
//! The worker processes are forked by a helper process that never starts a thread (this
//! program has a rayon pool, and forking a process with threads copies only the forking one):
//! [`child::Forker`]. The ways to run the job are in `workers.rs`, the job in `primes.rs`,
//! and the timing loop ([`measure::run_contenders`]) in `measure.rs`.
//!
//! **Run it**: `cargo run --release -p parallel` (about two seconds), `-- --json` for the
//! Report, `-- --workers 8 --limit 5000000` for more workers and a bigger job.

mod child;
mod measure;
mod primes;
mod workers;

use std::io::{PipeReader, PipeWriter};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use labkit::exit::usage;
use labkit::limits::{Ask, check};
use labkit::measure::median;
use labkit::signals::Shutdown;
use labkit::{Better, CommonArgs, Outcome, Report, RoleArgs, Size, Test, Variant};

use child::{Forker, ProcessPool};
use measure::{Contender, record, run_contenders};

/// The job by default (primes below this), and with `--quick`; the largest `--limit`.
const LIMIT: Size = Size::new(1_200_000, 60_000, 1 << 40);
/// The small job is this many times smaller.
const SMALL: u64 = 100;
/// The most workers `--workers` accepts.
const MAX_WORKERS: u64 = 32;

#[derive(Parser, Debug)]
#[command(
    about = "CPU-bound work over cores: serial, rayon, scoped threads and forked worker processes.",
    after_help = labkit::examples!(
        "",
        " -- --json | jq .claims",
        " -- --workers 8 --limit 5000000"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    /// Count the primes below this [default: 1200000; --quick: 60000; from 1000 to 2^40].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1000, LIMIT.max))]
    limit: Option<u64>,

    /// Up to this many workers [default: the CPUs this process may use; from 1 to 32].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_WORKERS))]
    workers: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,
}

fn main() -> ExitCode {
    labkit::dispatch(Args::parse(), |a| &a.role, run, run_child)
}

fn run(args: Args) -> Result<Outcome> {
    let (mut report, shutdown) = labkit::start(env!("CARGO_PKG_NAME"))?;
    let common = &args.common;
    let cpus = labkit::pin::allowed_cpus()
        .context("sched_getaffinity")?
        .len()
        .max(1) as u64;
    let limit = common.size(args.limit, LIMIT);
    let max = args.workers.unwrap_or(cpus);
    // Workers at once, and the pipes of a process pool's (measured here: 20 descriptors with
    // one worker, 40 with eight; asked: a lower bound).
    check(&format!("--workers {max}"), Ask::Tasks(max))?;
    check(&format!("--workers {max}"), Ask::Descriptors(2 * max + 12))?;
    let blocks = common.blocks();
    report.param("limit", limit);
    report.param("workers", max);
    report.param("cpus_allowed", cpus);
    report.param("blocks", blocks);

    // The helper that forks the worker processes serves both steps.
    let mut forker = Forker::start()?;
    let sizes = [limit, blocks, max];
    let job = measure_job(&mut report, common, &mut forker, sizes, shutdown)?;
    let sizes = [(limit / SMALL).max(1000), blocks, max];
    let small = measure_small_job(&mut report, common, &mut forker, sizes, shutdown)?;
    forker.finish()?;

    check_results(&mut report, &job, &small);
    report.note_one_side(common);
    judge_claims(&mut report, &job, &small, cpus);
    report.end(common.json)
}

/// Step 1: the serial baseline, then every parallel way for 1 to `max` workers.
fn measure_job(
    report: &mut Report,
    common: &CommonArgs,
    forker: &mut Forker,
    [limit, blocks, max]: [u64; 3],
    shutdown: &Shutdown,
) -> Result<Vec<Contender>> {
    let mut all = vec![Contender::new(Variant::Serial, "loop", 1)?];
    for w in 1..=max {
        for (variant, mechanism) in [
            (Variant::Thread, "rayon"),
            (Variant::Thread, "scoped-threads"),
            (Variant::Process, "fork"),
        ] {
            if common.wants(variant) {
                all.push(Contender::new(variant, mechanism, w)?);
            }
        }
    }
    run_contenders(&mut all, forker, None, limit, blocks, shutdown)?;
    record(report, &mut all, "job", limit);
    Ok(all)
}

/// Step 2: the small job on `workers` workers, like with like: created for each job, and
/// created once before the jobs.
fn measure_small_job(
    report: &mut Report,
    common: &CommonArgs,
    forker: &mut Forker,
    [limit, blocks, workers]: [u64; 3],
    shutdown: &Shutdown,
) -> Result<Vec<Contender>> {
    let mut small = Vec::new();
    for (variant, mechanism) in [
        (Variant::Thread, "scoped-threads"),
        (Variant::Process, "fork"),
        (Variant::Thread, "thread-pool"),
        (Variant::Process, "process-pool"),
    ] {
        if common.wants(variant) {
            small.push(Contender::new(variant, mechanism, workers)?);
        }
    }
    let mut pool = if common.wants(Variant::Process) {
        Some(ProcessPool::start(workers)?)
    } else {
        None
    };
    run_contenders(&mut small, forker, pool.as_mut(), limit, blocks, shutdown)?;
    if let Some(pool) = pool {
        pool.finish()?;
    }
    record(report, &mut small, "small_job", limit);
    Ok(small)
}

fn check_results(report: &mut Report, all: &[Contender], small: &[Contender]) {
    for (jobs, what) in [(all, "job"), (small, "small job")] {
        let first = jobs.first().and_then(|c| c.result);
        let same = jobs.iter().all(|c| c.result.is_some() && c.result == first);
        let detail = match first {
            Some(t) => format!(
                "{} runs of the {what}, every one found {} primes summing to {}",
                jobs.iter().map(|c| c.times.len() + 1).sum::<usize>(),
                t.count,
                t.sum
            ),
            None => format!("no {what} ran"),
        };
        report.check(
            &format!("every way of running the {what} gave the same result"),
            same,
            detail,
        );
    }
}

/// The speed-up that shows work really ran on `n` cores at once: half the ideal gain.
fn parallel_threshold(n: u64) -> f64 {
    1.0 + 0.5 * (n as f64 - 1.0)
}

/// How the evidence names a way of running the job.
fn side_name(mechanism: &str) -> &'static str {
    match mechanism {
        "scoped-threads" => "scoped threads",
        "fork" => "forked processes",
        "thread-pool" => "a thread pool fed over channels",
        "process-pool" => "a process pool fed over pipes",
        _ => "rayon threads",
    }
}

/// Step 3: the claims.
fn judge_claims(report: &mut Report, all: &[Contender], small: &[Contender], cpus: u64) {
    let Some(serial) = all.iter().find(|c| c.variant == Variant::Serial) else {
        return;
    };
    let widest = all.iter().map(|c| c.workers).max().unwrap_or(1);
    let mut parts = Vec::new();
    for mechanism in ["fork", "rayon"] {
        let Some(c) = all
            .iter()
            .find(|c| c.mechanism == mechanism && c.workers == widest)
        else {
            continue;
        };
        let speedup = median(&serial.times) / median(&c.times);
        parts.push(format!("{mechanism} x{speedup:.2}"));
        judge_parallel(report, serial, c, cpus);
    }
    // Like with like on the small job: workers created for each job, and pools created before.
    let find = |m: &str| small.iter().find(|c| c.mechanism == m);
    for (threads, processes, what) in [
        ("scoped-threads", "fork", "workers created for each job"),
        (
            "thread-pool",
            "process-pool",
            "workers created once, before the jobs",
        ),
    ] {
        if let (Some(t), Some(p)) = (find(threads), find(processes)) {
            judge_shared_data(report, t, p, what);
        }
    }
    // Every check is that the runs agreed: when all passed, say so.
    let agreed = if report.passed() {
        "; every run gave the same result"
    } else {
        ""
    };
    report.conclude(format!(
        "counting primes with up to {widest} worker(s) on {cpus} allowed CPU(s): speed-up over \
         serial {}{agreed}",
        parts.join(", ")
    ));
}

/// `concurrency.both-parallel` for one way at its widest (`c`) against the serial run.
fn judge_parallel(report: &mut Report, serial: &Contender, c: &Contender, cpus: u64) {
    let (Some(base), Some(this)) = (&serial.measured, &c.measured) else {
        return;
    };
    let widest = c.workers;
    if widest.min(cpus) < 2 {
        report.claim_observed(
            "concurrency.both-parallel",
            labkit::Verdict::Inconclusive,
            format!("{widest} worker(s) on {cpus} allowed CPU(s): no parallelism to see"),
        );
        return;
    }
    // "Runs in parallel" is more than "is faster": the speed-up must beat half the ideal
    // gain, which no interleaving on one core can reach.
    let test = Test::new(
        format!(
            "the job on {widest} {} and {cpus} CPU(s), against one worker (margin: half the \
             ideal gain)",
            if c.variant == Variant::Process {
                "worker processes"
            } else {
                "rayon threads"
            }
        ),
        "ns",
        Better::Lower,
        "faster",
    )
    .favoured(format!("{widest} workers"), &c.times)
    .other("serial", &serial.times)
    .margin(parallel_threshold(widest.min(cpus)));
    report.claim_measured("concurrency.both-parallel", test, [base, this]);
}

/// `usecase.shared-data` on the small job: threads `t` against processes `p`, both `what`.
fn judge_shared_data(report: &mut Report, t: &Contender, p: &Contender, what: &str) {
    let (Some(pm), Some(tm)) = (&p.measured, &t.measured) else {
        return;
    };
    let test = Test::new(
        format!("a job 100x smaller on {} workers, {what}", t.workers),
        "ns",
        Better::Lower,
        "faster",
    )
    .favoured(side_name(t.mechanism), &t.times)
    .other(side_name(p.mechanism), &p.times);
    report.claim_measured("usecase.shared-data", test, [pm, tm]);
}

/// The helper processes, when this binary runs as a child: `--role forker` forks the worker
/// processes ([`workers::serve_forks`]); `--role pool-worker` is one worker of the process pool
/// ([`workers::serve_pool`]). Each takes back the two pipe ends it was given.
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let role = args.role.role.clone().unwrap_or_default();
    match role.as_str() {
        "forker" | "pool-worker" => {
            let mut fds = args.role.take_fds()?.into_iter();
            let requests = PipeReader::from(fds.next().context("no request fd passed")?);
            let replies = PipeWriter::from(fds.next().context("no reply fd passed")?);
            if role == "forker" {
                workers::serve_forks(requests, replies).context("serve fork requests")?;
            } else {
                workers::serve_pool(requests, replies).context("serve the pool's jobs")?;
            }
            Ok(Outcome::Passed)
        }
        other => Err(usage(format!("unknown role `{other}`"))),
    }
}

#[cfg(test)]
testkit::fuzz_test!(Args);
