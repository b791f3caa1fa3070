//! The measuring loop of steps 1 and 2: each way of running the job (a [`Contender`]), timed
//! in alternating blocks after a warm-up round, and its measurements in the Report.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::measure::{cpu_ns_per_op, median};
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder, Measurement, Report, Variant};
use serde_json::json;

use crate::child::{Forker, ProcessPool};
use crate::primes::Tally;
use crate::workers;

/// One way to run the job, with its figures.
pub struct Contender {
    pub variant: Variant,
    pub mechanism: &'static str,
    pub workers: u64,
    pool: Option<rayon::ThreadPool>,
    /// For `thread-pool`: worker threads started once.
    threads: Option<workers::ThreadPool>,
    /// Job time per block, in ns.
    pub times: Vec<f64>,
    cpu: Duration,
    pub result: Option<Tally>,
    /// Its job-time histogram as the Report holds it (set by [`record`]).
    pub measured: Option<Measurement>,
}

impl Contender {
    pub fn new(variant: Variant, mechanism: &'static str, workers: u64) -> Result<Contender> {
        let pool = if mechanism == "rayon" {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers as usize)
                .build()
                .map_err(os_error_of)
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
            measured: None,
        })
    }

    /// The job once, its way: the result, and the CPU time (ns) of workers that the clock of
    /// this process and its live children cannot see (forked workers, reaped by the helper).
    fn run_once(
        &self,
        limit: u64,
        forker: &mut Forker,
        pool: Option<&mut ProcessPool>,
    ) -> Result<(Tally, u64)> {
        let tally = match self.mechanism {
            "loop" => workers::serial(limit),
            "rayon" => workers::rayon(
                self.pool.as_ref().expect("a rayon contender has a pool"),
                limit,
            ),
            "scoped-threads" => workers::scoped_threads(limit, self.workers)
                .context("spawn the scoped worker threads")?,
            "thread-pool" => self
                .threads
                .as_ref()
                .expect("a thread-pool contender has its threads")
                .run(limit)
                .context("the thread pool")?,
            "process-pool" => pool
                .expect("a process-pool contender has its pool")
                .run(limit)?,
            _ => return forker.run(limit, self.workers),
        };
        Ok((tally, 0))
    }
}

/// Every contender once per block, blocks alternating, after one untimed round that starts
/// pools and fills caches. Every run of a contender must give the same result.
pub fn run_contenders(
    all: &mut [Contender],
    forker: &mut Forker,
    mut pool: Option<&mut ProcessPool>,
    limit: u64,
    blocks: u64,
    shutdown: &Shutdown,
) -> Result<()> {
    for block in 0..=blocks {
        let warm_up = block == 0;
        for c in all.iter_mut() {
            shutdown.check()?;
            let pids = match (c.mechanism, pool.as_deref()) {
                ("fork", _) => vec![forker.pid()],
                ("process-pool", Some(pool)) => pool.pids(),
                _ => Vec::new(),
            };
            let cpu_before = CpuClock::now(&pids)?;
            let start = Instant::now();
            let (tally, workers_cpu) = c.run_once(limit, forker, pool.as_deref_mut())?;
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

/// Job-time histograms (kept in each contender too), and speed-up and efficiency against the
/// serial run where there is one.
pub fn record(report: &mut Report, all: &mut [Contender], name: &str, limit: u64) {
    let serial = all
        .iter()
        .find(|c| c.variant == Variant::Serial)
        .map(|c| median(&c.times));
    for c in all {
        let mut h = LatencyRecorder::new();
        c.times.iter().for_each(|&t| h.record_ns(t as u64));
        let config = json!({ "workers": c.workers, "limit": limit });
        let measured = Measurement::histogram(
            name,
            c.variant,
            c.mechanism,
            config.clone(),
            &h,
            cpu_ns_per_op(c.cpu, c.times.len() as u64),
        );
        report.measure(measured.clone());
        c.measured = Some(measured);
        if let (Some(serial), false) = (serial, c.variant == Variant::Serial) {
            let speedup = serial / median(&c.times);
            let value = |name, unit, v| {
                Measurement::value(name, c.variant, c.mechanism, config.clone(), unit, v, None)
            };
            report.measure(value("speedup", "x", speedup));
            report.measure(value("efficiency", "%", 100.0 * speedup / c.workers as f64));
        }
    }
}

/// rayon's error prints the system's error, then gives it again as its source (so it would be
/// printed twice): the system's error alone, whose errno `labkit::limits` reads.
fn os_error_of(err: rayon::ThreadPoolBuildError) -> anyhow::Error {
    match std::error::Error::source(&err).and_then(|e| e.downcast_ref::<std::io::Error>()) {
        Some(io) => match io.raw_os_error() {
            Some(errno) => std::io::Error::from_raw_os_error(errno).into(),
            None => std::io::Error::new(io.kind(), io.to_string()).into(),
        },
        None => err.into(),
    }
}
