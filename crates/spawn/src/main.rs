//! # spawn: what it costs to create a process, a thread, and an async task
//!
//! **Claims** (from the seed, checked on this machine):
//! * `overhead.process-creation`: creating a process costs more than creating a thread;
//! * `overhead.process-memory`: a process needs memory of its own, threads share their process's;
//! * beyond the seed, `task.creation-cheaper`: creating an async task costs less than creating a
//!   thread.
//!
//! **Steps**
//! 1. [`measure_creation`]: each way to start a unit and wait for it, in alternating blocks
//!    after a warm-up: `fork` + `_exit` + `waitpid`; `fork` + `execv` of `/bin/true`;
//!    `posix_spawn` of it; `std::process::Command` (which itself uses `posix_spawn` where it
//!    can); `std::thread::spawn` + `join`; a scoped thread; bare `pthread_create` + `join`;
//!    `tokio::spawn` + `.await` of an async task on a current-thread runtime.
//! 2. [`measure_against_parent_size`]: the parent writes every page of a buffer of 1 MiB up to
//!    `--max-rss` MiB; at each size, `fork`, `posix_spawn` and a thread again: `fork` copies the
//!    page tables of everything resident, the others do not.
//! 3. [`measure_memory_per_unit`]: PSS (and page tables) added per idle forked child, per
//!    idle thread and per idle async task, in alternating rounds.
//! 4. [`measure_pool_task`]: a task on an existing rayon pool, which creates nothing at all.
//!    (It runs last: every fork above happens while this process has a single thread.)
//! 5. [`judge_claims`]: thread against `fork` for creation, and for memory; task against thread
//!    for creation.
//!
//! The ways to create a unit are in `create.rs`, the memory figures from `/proc` in
//! `memory.rs`, and the timing of one way in blocks ([`measure::Way`]) in `measure.rs`.
//!
//! **Run it**: `cargo run --release -p spawn` (about two seconds), `-- --max-rss 512` to add
//! the large parents (slower, needs the memory), `-- --json`.

mod create;
mod measure;
mod memory;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use labkit::exit::usage;
use labkit::limits::{Ask, check};
use labkit::measure::{block_sizes, cpu_ns_per_op};
use labkit::report::format_ns;
use labkit::signals::Shutdown;
use labkit::{
    Better, CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, Report, Size, Test,
    Variant,
};
use serde_json::json;

use create::Program;
use measure::{Figures, Way, claim_for_threads, find, with_runtime};

/// Creations per mechanism by default, and with `--quick`; the most `--iterations` accepts.
const ITERATIONS: Size = Size::new(300, 30, 1_000_000);
/// The largest parent by default (MiB), with `--quick`, and the most `--max-rss` accepts.
const MAX_RSS: Size = Size::new(64, 8, 16 << 10);
/// Parent sizes tried, up to `--max-rss` (MiB).
const RSS_STEPS: [u64; 6] = [1, 8, 64, 512, 4096, 16384];
/// Creations per mechanism at each parent size.
const RSS_ITERATIONS: u64 = 30;
/// Idle units per memory round.
const UNITS: usize = 16;
/// Idle async tasks per memory round: a task is a few hundred bytes, so it takes many to move
/// PSS by whole pages.
const TASKS: usize = 100_000;
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
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, ITERATIONS.max))]
    iterations: Option<u64>,

    /// The largest parent to fork from, in MiB: 1, 8, 64, 512, 4096 … up to this
    /// [default: 64; --quick: 8; from 1 to 16384].
    #[arg(long, value_name = "MIB", value_parser = labkit::cli::bounded(1, MAX_RSS.max))]
    max_rss: Option<u64>,
}

fn main() -> ExitCode {
    labkit::finish(env!("CARGO_PKG_NAME"), run(Args::parse()))
}

fn run(args: Args) -> Result<Outcome> {
    let (mut report, shutdown) = labkit::start(env!("CARGO_PKG_NAME"))?;
    let common = &args.common;
    let sides = common.sides();
    let iterations = common.size(args.iterations, ITERATIONS);
    let max_rss = common.size(args.max_rss, MAX_RSS);
    let available = memory::available_mib().context("read /proc/meminfo")?;
    if max_rss * 2 > available {
        return Err(usage(format!(
            "--max-rss {max_rss} needs about {} MiB free (the parent, and a child's page tables); \
             this machine has {available} MiB available",
            max_rss * 2
        )));
    }
    // The parent grows to `--max-rss` before it forks: within its address space too.
    check(
        &format!("--max-rss {max_rss}"),
        Ask::AddressSpace(max_rss << 20),
    )?;
    let blocks = common.blocks().min(iterations);
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .context("sysconf(PAGE_SIZE)")?
        .map_or(4096, |p| p as u64);
    let tiny = Program::new(TINY)?;
    if !std::path::Path::new(TINY).exists() {
        bail!("{TINY} is missing: exec-based creation needs a tiny program to start");
    }
    report.param("iterations", iterations);
    report.param("blocks", blocks);
    report.param("max_rss_mib", max_rss);
    report.param("program", TINY);

    let creation = measure_creation(&mut report, &tiny, [iterations, blocks], sides, shutdown)?;
    let forks = measure_against_parent_size(&mut report, &tiny, [max_rss, page], sides, shutdown)?;
    let memory = measure_memory_per_unit(&mut report, [blocks, page], sides, shutdown)?;
    if sides[1] {
        measure_pool_task(&mut report, iterations)?;
    }
    if sides == [true, true] {
        judge_claims(&mut report, &creation, &memory, &forks);
    } else {
        report.summary = format!(
            "one side only: creating and waiting for a unit, p50: {}",
            creation
                .iter()
                .map(|f| format!("{} {}", f.mechanism, f.p50()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    report.note_one_side(common);
    report.end(common.json)
}

/// Step 1: every way, alternating blocks after a warm-up.
fn measure_creation(
    report: &mut Report,
    tiny: &Program,
    [iterations, blocks]: [u64; 2],
    sides: [bool; 2],
    shutdown: &Shutdown,
) -> Result<Vec<Figures>> {
    let mut ways = vec![
        Way::new(Variant::Process, "fork"),
        Way::new(Variant::Process, "fork-exec"),
        Way::new(Variant::Process, "posix_spawn"),
        Way::new(Variant::Process, "command"),
        Way::new(Variant::Thread, "thread-spawn"),
        Way::new(Variant::Thread, "scoped-thread"),
        Way::new(Variant::Thread, "pthread"),
        Way::new(Variant::Task, "tokio-task"),
    ];
    ways.retain(|w| w.wanted(sides));
    for way in &mut ways {
        way.run(iterations.div_ceil(10).min(20), tiny, false, shutdown)?;
    }
    for n in block_sizes(iterations, blocks) {
        for way in &mut ways {
            way.run(n, tiny, true, shutdown)?;
        }
    }
    let rss = memory::rss_kib(std::process::id()).unwrap_or(0);
    // Every creation is checked where it happens (a child that does not exit 0, a thread that
    // does not join, stops the run with exit 1), so no count is left to check here.
    let config = json!({ "parent_rss_kib": rss });
    Ok(ways
        .iter()
        .map(|way| {
            let measured = way.measurement("create", with_runtime(way.variant, config.clone()));
            report.measure(measured.clone());
            way.figures(measured)
        })
        .collect())
}

/// Step 2: `fork`, `posix_spawn` and a thread from a parent with more and more resident memory.
/// Returns the p50 of `fork` (ns) at each parent size (MiB).
fn measure_against_parent_size(
    report: &mut Report,
    tiny: &Program,
    [max_rss, page]: [u64; 2],
    sides: [bool; 2],
    shutdown: &Shutdown,
) -> Result<Vec<(u64, u64)>> {
    let (mut lines, mut forks) = (Vec::new(), Vec::new());
    let mut resident = true;
    for &mib in RSS_STEPS.iter().filter(|&&m| m <= max_rss) {
        let before = memory::rss_kib(std::process::id()).context("read VmRSS")?;
        let buffer = memory::resident_buffer(mib as usize, page as usize);
        let rss = memory::rss_kib(std::process::id()).context("read VmRSS")?;
        // Every written page must now be resident (90%: the allocator may reuse freed pages).
        resident &= (rss.saturating_sub(before)) as f64 >= 0.9 * (mib * 1024) as f64;
        let mut ways = vec![
            Way::new(Variant::Process, "fork"),
            Way::new(Variant::Process, "posix_spawn"),
            Way::new(Variant::Thread, "thread-spawn"),
        ];
        ways.retain(|w| w.wanted(sides));
        let config = json!({ "parent_rss_mib": mib, "rss_kib": rss });
        let mut figures = Vec::new();
        for way in &mut ways {
            way.run(RSS_ITERATIONS, tiny, true, shutdown)?;
        }
        for way in &ways {
            let p50 = way.latency.p50();
            figures.push(format!("{} {}", way.mechanism, format_ns(p50 as f64)));
            if way.mechanism == "fork" {
                forks.push((mib, p50));
            }
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
    Ok(forks)
}

/// Step 3: memory per idle unit, in alternating rounds.
fn measure_memory_per_unit(
    report: &mut Report,
    [rounds, page]: [u64; 2],
    sides: [bool; 2],
    shutdown: &Shutdown,
) -> Result<Vec<Figures>> {
    let (mut processes, mut threads, mut tasks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        shutdown.check()?;
        if sides[0] {
            measure::single_threaded()?;
            // SAFETY: `single_threaded` just saw one thread, and nothing since has started one.
            let per_child = unsafe { memory::per_forked_child(UNITS) };
            processes.push(per_child.context("fork idle children")?);
        }
        if sides[1] {
            // At least a page: a thread touches at least one page of its stack, though PSS
            // shows less when glibc hands it a cached stack that is already resident.
            let per_thread = memory::per_thread(UNITS).context("spawn idle threads")?;
            threads.push(per_thread.max((page / 1024) as f64));
            let per_task = memory::per_task(TASKS).context("spawn idle tasks")?;
            tasks.push(per_task);
        }
    }
    let all = [
        (Variant::Process, "fork", processes, UNITS),
        (Variant::Thread, "thread-spawn", threads, UNITS),
        (Variant::Task, "tokio-task", tasks, TASKS),
    ];
    let measured = all.into_iter().filter(|(.., blocks, _)| !blocks.is_empty());
    Ok(measured
        .map(|(variant, mechanism, blocks, units)| {
            let config = with_runtime(variant, json!({ "units": units }));
            let kind = ("memory_per_unit", variant, mechanism);
            Figures::of_values(report, kind, config, "KiB", blocks)
        })
        .collect())
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

/// Step 5: the claims, from the figures of steps 1 to 3.
fn judge_claims(
    report: &mut Report,
    creation: &[Figures],
    memory: &[Figures],
    forks: &[(u64, u64)],
) {
    let (fork, thread) = (find(creation, "fork"), find(creation, "thread-spawn"));
    if let (Some(fork), Some(thread)) = (fork, thread) {
        let test = Test::new(
            "create and wait for one unit",
            "ns",
            Better::Lower,
            "cheaper",
        );
        let id = "overhead.process-creation";
        claim_for_threads(report, id, test, [fork, thread], "a fork");
    }
    if let (Some(task), Some(thread)) = (find(creation, "tokio-task"), thread) {
        // Beyond the seed: the third model.
        let test = Test::new(
            "create and wait for one unit",
            "ns",
            Better::Lower,
            "cheaper",
        )
        .favoured("an async task", &task.blocks)
        .other("a thread", &thread.blocks);
        report.claim_measured(
            "task.creation-cheaper",
            test,
            [&thread.measured, &task.measured],
        );
    }
    let (process, thread) = (find(memory, "fork"), find(memory, "thread-spawn"));
    if let (Some(process), Some(thread)) = (process, thread) {
        let test = Test::new(
            format!("memory added per idle unit, {UNITS} at a time (PSS and page tables)"),
            "KiB",
            Better::Lower,
            "smaller",
        );
        let id = "overhead.process-memory";
        claim_for_threads(report, id, test, [process, thread], "a process");
    }
    let p50_of = |m: &str| find(creation, m).map_or_else(String::new, Figures::p50);
    let kib = |f: Option<&Figures>| f.and_then(|f| f.measured.value).unwrap_or(0.0);
    report.conclude(format!(
        "creating and waiting for a unit, p50: fork {}, posix_spawn {}, thread {}, async task \
         {}; memory per idle unit: process {:.0} KiB, thread {:.0} KiB, async task {:.2} KiB{}",
        p50_of("fork"),
        p50_of("posix_spawn"),
        p50_of("thread-spawn"),
        p50_of("tokio-task"),
        kib(process),
        kib(thread),
        kib(find(memory, "tokio-task")),
        rss_growth(forks),
    ));
}

/// "; fork from a 64 MiB parent took 1.2 ms, x9 its cost from 1 MiB" when more than one size
/// ran (`forks`: the p50 of `fork`, ns, at each parent size, MiB).
fn rss_growth(forks: &[(u64, u64)]) -> String {
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
testkit::fuzz_test!(Args);
