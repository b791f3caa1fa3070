//! # spawn: what it costs to create a process, and a thread
//!
//! **Claims** (from the seed, checked on this machine):
//! * `overhead.process-creation`: creating a process costs more than creating a thread;
//! * `overhead.process-memory`: a process needs memory of its own, threads share their process's.
//!
//! **Steps**
//! 1. [`measure_creation`]: each way to start a unit and wait for it, in alternating blocks
//!    after a warm-up: `fork` + `_exit` + `waitpid`; `fork` + `execv` of `/bin/true`;
//!    `posix_spawn` of it; `std::process::Command` (which itself uses `posix_spawn` where it
//!    can); `std::thread::spawn` + `join`; a scoped thread; bare `pthread_create` + `join`.
//! 2. [`measure_against_parent_size`]: the parent writes every page of a buffer of 1 MiB up to
//!    `--max-rss` MiB; at each size, `fork`, `posix_spawn` and a thread again: `fork` copies the
//!    page tables of everything resident, the others do not.
//! 3. [`measure_memory_per_unit`]: PSS (and page tables) added per idle forked child vs per
//!    idle thread, in alternating rounds.
//! 4. [`measure_pool_task`]: a task on an existing rayon pool, which creates nothing at all.
//!    (It runs last: every fork above happens while this process has a single thread.)
//! 5. [`judge_claims`]: thread against `fork` for creation, and for memory.
//!
//! **Run it**: `cargo run --release -p spawn` (about two seconds), `-- --max-rss 512` to add
//! the large parents (slower, needs the memory), `-- --json`.

mod create;
mod memory;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use labkit::exit::usage;
use labkit::measure::{block_sizes, cpu_ns_per_op, median};
use labkit::report::format_ns;
use labkit::signals::Shutdown;
use labkit::{
    Better, CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, Report, Test, Variant,
};
use serde_json::json;

use create::Program;

/// Creations per mechanism by default, and with `--quick`; the most `--iterations` accepts.
const ITERATIONS: u64 = 300;
const QUICK_ITERATIONS: u64 = 30;
const MAX_ITERATIONS: u64 = 1_000_000;
/// The largest parent by default (MiB), with `--quick`, and the most `--max-rss` accepts.
const MAX_RSS: u64 = 64;
const QUICK_MAX_RSS: u64 = 8;
const MAX_MAX_RSS: u64 = 16 << 10;
/// Parent sizes tried, up to `--max-rss` (MiB).
const RSS_STEPS: [u64; 6] = [1, 8, 64, 512, 4096, 16384];
/// Creations per mechanism at each parent size.
const RSS_ITERATIONS: u64 = 30;
/// Alternating blocks (6 reach a 95% interval in one run), and with `--quick` (fewer: the
/// verdicts then say their lower confidence).
const BLOCKS: u64 = 6;
const QUICK_BLOCKS: u64 = 3;
/// Idle units per memory round.
const UNITS: usize = 16;
/// The tiny program that exec-based creation starts.
const TINY: &str = "/bin/true";

#[derive(Parser, Debug)]
#[command(
    about = "Creation cost and memory per unit: fork, posix_spawn, fork+exec vs threads and pool tasks.",
    after_help = labkit::examples!(
        "",
        " -- --max-rss 512",
        " -- --json | jq .claims"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    /// Creations per mechanism [default: 300; --quick: 30; from 1 to 1000000].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_ITERATIONS))]
    iterations: Option<u64>,

    /// The largest parent to fork from, in MiB: 1, 8, 64, 512, 4096 … up to this
    /// [default: 64; --quick: 8; from 1 to 16384].
    #[arg(long, value_name = "MIB", value_parser = labkit::cli::bounded(1, MAX_MAX_RSS))]
    max_rss: Option<u64>,
}

fn main() -> ExitCode {
    labkit::finish(env!("CARGO_PKG_NAME"), run(Args::parse()))
}

fn run(args: Args) -> Result<Outcome> {
    let shutdown = labkit::signals::install().context("install SIGINT/SIGTERM handlers")?;
    let common = &args.common;
    // [process, thread]: both, unless `--variant` picked one side.
    let sides = [
        common.wants(Variant::Process),
        common.wants(Variant::Thread),
    ];
    let iterations = args.iterations.unwrap_or(if common.quick {
        QUICK_ITERATIONS
    } else {
        ITERATIONS
    });
    let max_rss = args
        .max_rss
        .unwrap_or(if common.quick { QUICK_MAX_RSS } else { MAX_RSS });
    let available = available_mib().context("read /proc/meminfo")?;
    if max_rss * 2 > available {
        return Err(usage(format!(
            "--max-rss {max_rss} needs about {} MiB free (the parent, and a child's page tables); \
             this machine has {available} MiB available",
            max_rss * 2
        )));
    }
    let blocks = (if common.quick { QUICK_BLOCKS } else { BLOCKS }).min(iterations);
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .context("sysconf(PAGE_SIZE)")?
        .map_or(4096, |p| p as usize);
    let tiny = Program::new(TINY)?;
    if !std::path::Path::new(TINY).exists() {
        bail!("{TINY} is missing: exec-based creation needs a tiny program to start");
    }

    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    report.param("iterations", iterations);
    report.param("blocks", blocks);
    report.param("max_rss_mib", max_rss);
    report.param("program", TINY);

    let creation = measure_creation(&mut report, &tiny, [iterations, blocks], sides, shutdown)?;
    measure_against_parent_size(&mut report, &tiny, [max_rss, page as u64], sides, shutdown)?;
    let memory = measure_memory_per_unit(&mut report, blocks, sides, shutdown)?;
    if sides[1] {
        measure_pool_task(&mut report, iterations)?;
    }
    if sides == [true, true] {
        judge_claims(&mut report, &creation, &memory);
    } else {
        report.summary = format!(
            "one side only: creating and waiting for a unit, p50: {}",
            creation
                .iter()
                .map(|w| format!("{} {}", w.mechanism, format_ns(w.latency.p50() as f64)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    common.note_one_side(&mut report);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    Ok(Outcome::of(&report))
}

/// MiB of memory available now (`MemAvailable`).
fn available_mib() -> std::io::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| std::io::Error::other("no MemAvailable"))?;
    Ok(kib / 1024)
}

/// Waits (briefly) until this process has a single thread again: a thread that was just
/// joined may still be leaving the kernel. Every fork below happens after this.
fn single_threaded() -> Result<()> {
    let me = std::process::id();
    let start = Instant::now();
    while labkit::procfs::thread_count(me) != Some(1) {
        if start.elapsed() > Duration::from_secs(2) {
            bail!(
                "this process still has {:?} threads; refusing to fork",
                labkit::procfs::thread_count(me)
            );
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// One way to create a unit, with its figures.
struct Way {
    variant: Variant,
    mechanism: &'static str,
    latency: LatencyRecorder,
    block: LatencyRecorder,
    block_p50s: Vec<f64>,
    cpu: Duration,
}

impl Way {
    fn new(variant: Variant, mechanism: &'static str) -> Way {
        Way {
            variant,
            mechanism,
            latency: LatencyRecorder::new(),
            block: LatencyRecorder::new(),
            block_p50s: Vec::new(),
            cpu: Duration::ZERO,
        }
    }

    /// `n` creations, timed one by one; `timed` decides whether they count.
    fn run(&mut self, n: u64, tiny: &Program, timed: bool, shutdown: &Shutdown) -> Result<()> {
        if self.variant == Variant::Process {
            single_threaded()?;
        }
        // Children are reaped before each creation returns, so RUSAGE_CHILDREN holds them.
        let cpu_before = CpuClock::now(&[])?;
        self.block.reset();
        for _ in 0..n {
            shutdown.check()?;
            let start = Instant::now();
            create_one(self.mechanism, tiny)
                .with_context(|| format!("create a unit by {}", self.mechanism))?;
            self.block.record(start.elapsed());
        }
        if timed {
            self.cpu += CpuClock::since(cpu_before, &[])?;
            self.latency.add(&self.block);
            self.block_p50s.push(self.block.p50() as f64);
        }
        Ok(())
    }

    fn measurement(&self, name: &str, config: serde_json::Value) -> Measurement {
        let per_op = cpu_ns_per_op(self.cpu, self.latency.len());
        Measurement::histogram(
            name,
            self.variant,
            self.mechanism,
            config,
            &self.latency,
            per_op,
        )
    }
}

fn create_one(mechanism: &str, tiny: &Program) -> std::io::Result<()> {
    match mechanism {
        // SAFETY: `Way::run` waited for this process to have a single thread, and nothing
        // between that check and this call starts one.
        "fork" => unsafe { create::fork_exit_wait() },
        // SAFETY: as above.
        "fork-exec" => unsafe { create::fork_exec_wait(tiny) },
        "posix_spawn" => create::posix_spawn_wait(tiny),
        "command" => create::command_wait(TINY),
        "thread-spawn" => create::thread_spawn_join(),
        "pthread" => create::pthread_create_join(),
        "scoped-thread" => create::scoped_thread(),
        other => Err(std::io::Error::other(format!("no mechanism {other}"))),
    }
}

/// Step 1: every way, alternating blocks after a warm-up.
fn measure_creation(
    report: &mut Report,
    tiny: &Program,
    [iterations, blocks]: [u64; 2],
    sides: [bool; 2],
    shutdown: &Shutdown,
) -> Result<Vec<Way>> {
    let mut ways = vec![
        Way::new(Variant::Process, "fork"),
        Way::new(Variant::Process, "fork-exec"),
        Way::new(Variant::Process, "posix_spawn"),
        Way::new(Variant::Process, "command"),
        Way::new(Variant::Thread, "thread-spawn"),
        Way::new(Variant::Thread, "scoped-thread"),
        Way::new(Variant::Thread, "pthread"),
    ];
    ways.retain(|w| sides[usize::from(w.variant == Variant::Thread)]);
    for way in &mut ways {
        way.run(iterations.div_ceil(10).min(20), tiny, false, shutdown)?;
    }
    for n in block_sizes(iterations, blocks) {
        for way in &mut ways {
            way.run(n, tiny, true, shutdown)?;
        }
    }
    let rss = memory::rss_kib(std::process::id()).unwrap_or(0);
    for way in &ways {
        report.measure(way.measurement("create", json!({ "parent_rss_kib": rss })));
    }
    // Every creation is checked where it happens (a child that does not exit 0, a thread that
    // does not join, stops the run with exit 1), so no count is left to check here.
    Ok(ways)
}

/// Step 2: `fork`, `posix_spawn` and a thread from a parent with more and more resident memory.
fn measure_against_parent_size(
    report: &mut Report,
    tiny: &Program,
    [max_rss, page]: [u64; 2],
    sides: [bool; 2],
    shutdown: &Shutdown,
) -> Result<()> {
    let page = page as usize;
    let mut lines = Vec::new();
    let mut resident = true;
    for &mib in RSS_STEPS.iter().filter(|&&m| m <= max_rss) {
        let before = memory::rss_kib(std::process::id()).context("read VmRSS")?;
        let buffer = memory::resident_buffer(mib as usize, page);
        let rss = memory::rss_kib(std::process::id()).context("read VmRSS")?;
        // Every written page must now be resident (90%: the allocator may reuse freed pages).
        resident &= (rss.saturating_sub(before)) as f64 >= 0.9 * (mib * 1024) as f64;
        let mut ways = [
            Way::new(Variant::Process, "fork"),
            Way::new(Variant::Process, "posix_spawn"),
            Way::new(Variant::Thread, "thread-spawn"),
        ];
        for way in ways
            .iter_mut()
            .filter(|w| sides[usize::from(w.variant == Variant::Thread)])
        {
            way.run(RSS_ITERATIONS, tiny, true, shutdown)?;
        }
        let config = json!({ "parent_rss_mib": mib, "rss_kib": rss });
        let mut figures = Vec::new();
        for way in ways
            .iter()
            .filter(|w| sides[usize::from(w.variant == Variant::Thread)])
        {
            figures.push(format!(
                "{} {}",
                way.mechanism,
                format_ns(way.latency.p50() as f64)
            ));
            report.measure(way.measurement("create_vs_rss", config.clone()));
        }
        lines.push(format!(
            "{mib} MiB written (RSS {} MiB): {}",
            rss / 1024,
            figures.join(", ")
        ));
        drop(buffer);
    }
    report.check(
        "the parent's memory was resident at each size",
        resident && !lines.is_empty(),
        format!(
            "transparent huge pages: {}; {}",
            report.host.thp,
            lines.join("; ")
        ),
    );
    Ok(())
}

/// The page size in KiB.
fn page_kib() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4, |p| p as u64 / 1024)
}

/// Step 3: memory per idle unit, in alternating rounds.
fn measure_memory_per_unit(
    report: &mut Report,
    rounds: u64,
    sides: [bool; 2],
    shutdown: &Shutdown,
) -> Result<[Vec<f64>; 2]> {
    let (mut processes, mut threads) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        shutdown.check()?;
        if sides[0] {
            single_threaded()?;
            // SAFETY: `single_threaded` just saw one thread, and nothing since has started one.
            let per_child = unsafe { memory::per_forked_child(UNITS) };
            processes.push(per_child.context("fork idle children")?);
        }
        if sides[1] {
            // At least a page: a thread touches at least one page of its stack, though PSS
            // shows less when glibc hands it a cached stack that is already resident.
            let per_thread = memory::per_thread(UNITS).context("spawn idle threads")?;
            threads.push(per_thread.max((page_kib()) as f64));
        }
    }
    let config = json!({ "units": UNITS });
    for (variant, mechanism, figures) in [
        (Variant::Process, "fork", &processes),
        (Variant::Thread, "thread-spawn", &threads),
    ] {
        if !figures.is_empty() {
            report.measure(Measurement::value(
                "memory_per_unit",
                variant,
                mechanism,
                config.clone(),
                "KiB",
                median(figures),
                None,
            ));
        }
    }
    Ok([processes, threads])
}

/// Step 4: a task on a pool that already exists: no creation at all.
fn measure_pool_task(report: &mut Report, iterations: u64) -> Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .context("build a rayon pool")?;
    (0..20).for_each(|_| create::pool_task(&pool));
    let mut latency = LatencyRecorder::new();
    let cpu_before = CpuClock::now(&[])?;
    for _ in 0..iterations {
        let start = Instant::now();
        create::pool_task(&pool);
        latency.record(start.elapsed());
    }
    let per_op = cpu_ns_per_op(CpuClock::since(cpu_before, &[])?, iterations);
    report.measure(Measurement::histogram(
        "create",
        Variant::Thread,
        "rayon-task",
        json!({}),
        &latency,
        per_op,
    ));
    Ok(())
}

/// Step 5: the claims.
fn judge_claims(report: &mut Report, ways: &[Way], memory: &[Vec<f64>; 2]) {
    let find = |m: &str| {
        ways.iter()
            .find(|w| w.mechanism == m)
            .expect("every way ran")
    };
    let (fork, thread) = (find("fork"), find("thread-spawn"));
    let test = Test::new(
        "create and wait for one unit",
        "ns",
        Better::Lower,
        "cheaper",
    )
    .favoured("a thread", &thread.block_p50s)
    .other("a fork", &fork.block_p50s);
    let p50 = |m: &str| format_ns(find(m).latency.p50() as f64);
    let mem = |r: &Report, key: &str| r.find(key).cloned();
    if let (Some(fm), Some(tm)) = (
        mem(report, "create/process/fork"),
        mem(report, "create/thread/thread-spawn"),
    ) {
        report.claim_measured("overhead.process-creation", test, [&fm, &tm]);
    }

    let test = Test::new(
        format!("memory added per idle unit, {UNITS} at a time (PSS and page tables)"),
        "KiB",
        Better::Lower,
        "smaller",
    )
    .favoured("a thread", &memory[1])
    .other("a process", &memory[0]);
    if let (Some(pm), Some(tm)) = (
        mem(report, "memory_per_unit/process/fork"),
        mem(report, "memory_per_unit/thread/thread-spawn"),
    ) {
        report.claim_measured("overhead.process-memory", test, [&pm, &tm]);
    }
    report.summary = format!(
        "creating and waiting for a unit, p50: fork {}, posix_spawn {}, thread {}; memory per \
         idle unit: process {:.0} KiB, thread {:.0} KiB{}{}",
        p50("fork"),
        p50("posix_spawn"),
        p50("thread-spawn"),
        mem(report, "memory_per_unit/process/fork")
            .and_then(|m| m.value)
            .unwrap_or(0.0),
        mem(report, "memory_per_unit/thread/thread-spawn")
            .and_then(|m| m.value)
            .unwrap_or(0.0),
        rss_growth(report),
        if report.passed() {
            "."
        } else {
            "; a check FAILED."
        }
    );
}

/// "; fork from a 64 MiB parent took 1.2 ms, x9 its cost from 1 MiB" when more than one size ran.
fn rss_growth(report: &Report) -> String {
    let forks: Vec<(u64, u64)> = report
        .measurements
        .iter()
        .filter(|m| m.name == "create_vs_rss" && m.mechanism == "fork")
        .filter_map(|m| Some((m.config.get("parent_rss_mib")?.as_u64()?, m.p50?)))
        .collect();
    match (forks.first(), forks.last()) {
        (Some(&(small, a)), Some(&(big, b))) if big > small => format!(
            "; fork from a {big} MiB parent took {}, x{:.1} its cost from {small} MiB (page tables \
             are copied; posix_spawn and threads do not grow)",
            format_ns(b as f64),
            b as f64 / a.max(1) as f64
        ),
        _ => String::new(),
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
