//! # parallel: processes and threads both use every core
//!
//! **Claims** (from the seed, checked on this machine):
//! * `concurrency.both-parallel`: processes and threads both run in parallel on different cores;
//! * `usecase.shared-data`: threads suit work that shares data and needs fast communication.
//!
//! **Steps**
//! 1. [`run_contenders`]: one CPU-bound job (count and sum the primes below `--limit`) run
//!    serially, on a rayon pool, on scoped threads, and on forked worker processes, for 1 to
//!    `--workers` workers, all in alternating blocks after a warm-up round. Every run must give
//!    the same result.
//! 2. The same comparison for a job 100 times smaller, where handing out the work and gathering
//!    the results is most of the cost, like with like: workers created for each job (scoped
//!    threads, forked processes) and workers created once before the jobs (a thread pool fed
//!    over channels, a pool of worker processes fed over pipes: [`ProcessPool`]).
//! 3. [`judge_claims`]: speed-up against the serial run, per block pair; threads against
//!    processes on the small job, pool against pool and per job against per job.
//!
//! The worker processes are forked by a helper process that never starts a thread (this
//! program has a rayon pool, and forking a process with threads copies only the forking one).
//!
//! **Run it**: `cargo run --release -p parallel` (about two seconds), `-- --json` for the
//! Report, `-- --workers 8 --limit 5000000` for more workers and a bigger job.

mod primes;
mod workers;

use std::io::{PipeReader, PipeWriter};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use labkit::child::Peer;
use labkit::exit::usage;
use labkit::measure::{cpu_ns_per_op, median};
use labkit::signals::Shutdown;
use labkit::{
    Better, CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, Report, RoleArgs, Test,
    Variant,
};
use serde_json::json;

use primes::Tally;

/// The job by default (primes below this), and with `--quick`; the largest `--limit`.
const LIMIT: u64 = 1_200_000;
const QUICK_LIMIT: u64 = 60_000;
const MAX_LIMIT: u64 = 1 << 40;
/// The small job is this many times smaller.
const SMALL: u64 = 100;
/// The most workers `--workers` accepts.
const MAX_WORKERS: u64 = 32;
/// Alternating blocks (6 reach a 95% interval in one run), and with `--quick` (fewer: the
/// verdicts then say their lower confidence).
const BLOCKS: usize = 6;
const QUICK_BLOCKS: usize = 3;

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
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1000, MAX_LIMIT))]
    limit: Option<u64>,

    /// Up to this many workers [default: the CPUs this process may use; from 1 to 32].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_WORKERS))]
    workers: Option<u64>,

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

/// One way to run the job, with its figures.
struct Contender {
    variant: Variant,
    mechanism: &'static str,
    workers: u64,
    pool: Option<rayon::ThreadPool>,
    /// For `thread-pool`: worker threads started once.
    threads: Option<workers::ThreadPool>,
    /// Job time per block, in ns.
    times: Vec<f64>,
    cpu: Duration,
    result: Option<Tally>,
}

/// The fork helper: a child process that forks the worker processes.
struct Forker {
    peer: Peer,
    requests: PipeWriter,
    replies: PipeReader,
}

fn run(args: Args) -> Result<Outcome> {
    let shutdown = labkit::signals::install().context("install SIGINT/SIGTERM handlers")?;
    let common = &args.common;
    let cpus = labkit::pin::allowed_cpus()
        .context("sched_getaffinity")?
        .len()
        .max(1) as u64;
    let limit = args
        .limit
        .unwrap_or(if common.quick { QUICK_LIMIT } else { LIMIT });
    let max_workers = args.workers.unwrap_or(cpus);
    let blocks = if common.quick { QUICK_BLOCKS } else { BLOCKS };

    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    report.param("limit", limit);
    report.param("workers", max_workers);
    report.param("cpus_allowed", cpus);
    report.param("blocks", blocks);

    let mut forker = start_forker()?;
    let mut contenders = contenders(common, max_workers)?;
    run_contenders(&mut contenders, &mut forker, None, limit, blocks, shutdown)?;
    record(&mut report, &contenders, "job", limit);
    let mut small = Vec::new();
    for (variant, mechanism) in [
        (Variant::Thread, "scoped-threads"),
        (Variant::Process, "fork"),
        (Variant::Thread, "thread-pool"),
        (Variant::Process, "process-pool"),
    ] {
        if common.wants(variant) {
            small.push(contender(variant, mechanism, max_workers)?);
        }
    }
    let mut pool = if common.wants(Variant::Process) {
        Some(ProcessPool::start(max_workers)?)
    } else {
        None
    };
    run_contenders(
        &mut small,
        &mut forker,
        pool.as_mut(),
        (limit / SMALL).max(1000),
        blocks,
        shutdown,
    )?;
    if let Some(pool) = pool {
        pool.finish()?;
    }
    record(&mut report, &small, "small_job", (limit / SMALL).max(1000));
    drop(forker.requests); // EOF between requests: the helper leaves.
    forker.peer.finish()?;

    check_results(&mut report, &contenders, &small);
    common.note_one_side(&mut report);
    judge_claims(&mut report, &contenders, &small, cpus);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    Ok(Outcome::of(&report))
}

/// Worker processes started once, before any job: each is fed its share of every job over a
/// pipe of its own and answers over another ([`workers::serve_pool`]).
struct ProcessPool {
    peers: Vec<Peer>,
    links: Vec<(PipeWriter, PipeReader)>,
}

impl ProcessPool {
    fn start(workers: u64) -> Result<ProcessPool> {
        let mut peers = Vec::new();
        let mut links = Vec::new();
        for _ in 0..workers {
            let (shares_rx, shares) = std::io::pipe().context("pipe")?;
            let (results, results_tx) = std::io::pipe().context("pipe")?;
            peers.push(Peer::spawn(
                "pool-worker",
                &[shares_rx.as_fd(), results_tx.as_fd()],
                None,
                &[],
            )?);
            // The worker has its copies; ours would hide its death.
            drop((shares_rx, results_tx));
            links.push((shares, results));
        }
        Ok(ProcessPool { peers, links })
    }

    fn pids(&self) -> Vec<nix::unistd::Pid> {
        self.peers.iter().map(Peer::pid).collect()
    }

    /// One job, each worker its share; a broken pipe says which worker died and how.
    fn run(&mut self, limit: u64) -> Result<Tally> {
        workers::pool_job(&mut self.links, limit)
            .map_err(|e| labkit::child::explain_break(&mut self.peers, e))
    }

    /// EOF between jobs ends each worker; each must exit 0.
    fn finish(self) -> Result<()> {
        drop(self.links);
        self.peers.into_iter().try_for_each(Peer::finish)
    }
}

fn start_forker() -> Result<Forker> {
    let (req_rx, requests) = std::io::pipe().context("pipe")?;
    let (replies, rep_tx) = std::io::pipe().context("pipe")?;
    let peer = Peer::spawn("forker", &[req_rx.as_fd(), rep_tx.as_fd()], None, &[])?;
    drop((req_rx, rep_tx)); // The helper has its copies; ours would hide its death.
    Ok(Forker {
        peer,
        requests,
        replies,
    })
}

fn contender(variant: Variant, mechanism: &'static str, workers: u64) -> Result<Contender> {
    let pool = if mechanism == "rayon" {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers as usize)
            .build()
            .context("build a rayon pool")?;
        Some(pool)
    } else {
        None
    };
    let threads = if mechanism == "thread-pool" {
        Some(workers::ThreadPool::start(workers).context("start the pool's threads")?)
    } else {
        None
    };
    Ok(Contender {
        variant,
        mechanism,
        workers,
        pool,
        threads,
        times: Vec::new(),
        cpu: Duration::ZERO,
        result: None,
    })
}

/// The serial baseline, then every parallel way for 1 to `max` workers.
fn contenders(common: &CommonArgs, max: u64) -> Result<Vec<Contender>> {
    let mut all = vec![contender(Variant::Serial, "loop", 1)?];
    for w in 1..=max {
        for (variant, mechanism) in [
            (Variant::Thread, "rayon"),
            (Variant::Thread, "scoped-threads"),
            (Variant::Process, "fork"),
        ] {
            if common.wants(variant) {
                all.push(contender(variant, mechanism, w)?);
            }
        }
    }
    Ok(all)
}

/// Step 1 (and 2): every contender once per block, blocks alternating, after one untimed
/// round that starts pools and fills caches.
fn run_contenders(
    all: &mut [Contender],
    forker: &mut Forker,
    mut pool: Option<&mut ProcessPool>,
    limit: u64,
    blocks: usize,
    shutdown: &Shutdown,
) -> Result<()> {
    for block in 0..=blocks {
        let warm_up = block == 0;
        for c in all.iter_mut() {
            shutdown.check()?;
            let pids = match (c.mechanism, pool.as_deref()) {
                ("fork", _) => vec![forker.peer.pid()],
                ("process-pool", Some(pool)) => pool.pids(),
                _ => Vec::new(),
            };
            let cpu_before = CpuClock::now(&pids)?;
            let start = Instant::now();
            let (tally, workers_cpu) = match c.mechanism {
                "loop" => (workers::serial(limit), 0),
                "rayon" => (
                    workers::rayon(
                        c.pool.as_ref().expect("a rayon contender has a pool"),
                        limit,
                    ),
                    0,
                ),
                "scoped-threads" => (workers::scoped_threads(limit, c.workers), 0),
                "thread-pool" => (
                    c.threads
                        .as_ref()
                        .expect("a thread-pool contender has its threads")
                        .run(limit)
                        .context("the thread pool")?,
                    0,
                ),
                "process-pool" => (
                    pool.as_deref_mut()
                        .expect("a process-pool contender has its pool")
                        .run(limit)?,
                    0,
                ),
                _ => {
                    let f = workers::forked(
                        &mut forker.requests,
                        &mut forker.replies,
                        limit,
                        c.workers,
                    )
                    .map_err(|e| forker.peer.death(e))?;
                    (f.tally, f.cpu_ns)
                }
            };
            if !warm_up {
                c.times.push(start.elapsed().as_nanos() as f64);
                c.cpu += CpuClock::since(cpu_before, &pids)? + Duration::from_nanos(workers_cpu);
            }
            if c.result.is_some_and(|r| r != tally) {
                bail!(
                    "{} with {} workers gave two different results",
                    c.mechanism,
                    c.workers
                );
            }
            c.result = Some(tally);
        }
    }
    Ok(())
}

/// Job-time histograms, and speed-up and efficiency against the serial run where there is one.
fn record(report: &mut Report, all: &[Contender], name: &str, limit: u64) {
    let serial = all
        .iter()
        .find(|c| c.variant == Variant::Serial)
        .map(|c| median(&c.times));
    for c in all {
        let mut h = LatencyRecorder::new();
        c.times.iter().for_each(|&t| h.record_ns(t as u64));
        let config = json!({ "workers": c.workers, "limit": limit });
        report.measure(Measurement::histogram(
            name,
            c.variant,
            c.mechanism,
            config.clone(),
            &h,
            cpu_ns_per_op(c.cpu, c.times.len() as u64),
        ));
        if let (Some(serial), false) = (serial, c.variant == Variant::Serial) {
            let speedup = serial / median(&c.times);
            report.measure(Measurement::value(
                "speedup",
                c.variant,
                c.mechanism,
                config.clone(),
                "x",
                speedup,
                None,
            ));
            report.measure(Measurement::value(
                "efficiency",
                c.variant,
                c.mechanism,
                config,
                "%",
                100.0 * speedup / c.workers as f64,
                None,
            ));
        }
    }
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
    let at_widest = |mechanism: &str| {
        all.iter()
            .find(|c| c.mechanism == mechanism && c.workers == widest)
    };
    let mut parts = Vec::new();
    for mechanism in ["fork", "rayon"] {
        let Some(c) = at_widest(mechanism) else {
            continue;
        };
        let cores = widest.min(cpus);
        let speedup = median(&serial.times) / median(&c.times);
        parts.push(format!("{mechanism} x{speedup:.2}"));
        let (Some(base), Some(this)) = (
            measurement_for(report, "job", serial),
            measurement_for(report, "job", c),
        ) else {
            continue;
        };
        if cores < 2 {
            report.claim_observed(
                "concurrency.both-parallel",
                labkit::Verdict::Inconclusive,
                format!("{widest} worker(s) on {cpus} allowed CPU(s): no parallelism to see"),
            );
            continue;
        }
        // "Runs in parallel" is more than "is faster": the speed-up must beat half the ideal
        // gain, which no interleaving on one core can reach.
        let test = Test::new(
            format!(
                "the job on {widest} {} and {cpus} CPU(s), against one worker (margin: half \
                 the ideal gain)",
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
        .margin(parallel_threshold(cores));
        report.claim_measured("concurrency.both-parallel", test, [&base, &this]);
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
        let (Some(t), Some(p)) = (find(threads), find(processes)) else {
            continue;
        };
        let (Some(pm), Some(tm)) = (
            measurement_for(report, "small_job", p),
            measurement_for(report, "small_job", t),
        ) else {
            continue;
        };
        let test = Test::new(
            format!("a job 100x smaller on {widest} workers, {what}"),
            "ns",
            Better::Lower,
            "faster",
        )
        .favoured(side_name(t.mechanism), &t.times)
        .other(side_name(p.mechanism), &p.times);
        report.claim_measured("usecase.shared-data", test, [&pm, &tm]);
    }
    report.summary = format!(
        "counting primes with up to {widest} worker(s) on {cpus} allowed CPU(s): speed-up over serial {}{}",
        parts.join(", "),
        if report.passed() {
            "; every run gave the same result."
        } else {
            "; a check FAILED."
        }
    );
}

/// The `name` histogram of this contender (`job` or `small_job`).
fn measurement_for(report: &Report, name: &str, c: &Contender) -> Option<Measurement> {
    let workers = Some(c.workers);
    report
        .measurements
        .iter()
        .find(|m| {
            m.name == name
                && m.variant == c.variant
                && m.mechanism == c.mechanism
                && m.config.get("workers").and_then(serde_json::Value::as_u64) == workers
        })
        .cloned()
}

/// The fork helper, when this binary runs as a child (`--role forker`).
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
mod flag_tests {
    /// Random command lines (see `testkit::fuzz_flags`): accepted or refused with a
    /// message naming the limit, never a panic. `LAB_FUZZ_CASES=10000` for the full figure.
    #[test]
    fn random_flags_are_accepted_or_refused_never_a_panic() {
        testkit::fuzz_flags::<super::Args>(testkit::fuzz_cases());
    }
}
