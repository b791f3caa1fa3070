//! The measuring side of steps 1 to 3: a way to create a unit, timed one creation at a time
//! in blocks; the figures a verdict is made from; and the claim made from a pair of them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::measure::cpu_ns_per_op;
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder, Measurement, Report, Test, Variant};

use crate::create::{self, Program};

/// What a step measured for one contender: its figure per block (or round), which the verdict
/// pairs, and the measurement the Report holds for it, which the claim names.
pub struct Figures {
    pub mechanism: &'static str,
    pub blocks: Vec<f64>,
    pub measured: Measurement,
}

/// The runtime async tasks run on (see `create::task_runtime`), as the Report names it.
const TASK_RUNTIME: &str = "tokio current-thread";

/// `config`, with the runtime named if `variant` is a task's.
pub fn with_runtime(variant: Variant, mut config: serde_json::Value) -> serde_json::Value {
    if variant == Variant::Task {
        config["runtime"] = serde_json::json!(TASK_RUNTIME);
    }
    config
}

impl Figures {
    /// The figure of each round (`blocks`), measured in `report` as their median: `kind` is the
    /// measurement's name, variant and mechanism.
    pub fn of_values(
        report: &mut Report,
        (name, variant, mechanism): (&str, Variant, &'static str),
        config: serde_json::Value,
        unit: &str,
        blocks: Vec<f64>,
    ) -> Figures {
        let median = labkit::measure::median(&blocks);
        let measured = Measurement::value(name, variant, mechanism, config, unit, median, None);
        report.measure(measured.clone());
        Figures {
            mechanism,
            blocks,
            measured,
        }
    }

    /// Its p50, for a person (a histogram's).
    pub fn p50(&self) -> String {
        labkit::report::format_ns(self.measured.p50.unwrap_or(0) as f64)
    }
}

/// A measured claim that a thread beats a process (`process_name` in the evidence), from
/// their block figures, naming the two measurements it compares.
pub fn claim_for_threads(
    report: &mut Report,
    id: &str,
    test: Test,
    [process, thread]: [&Figures; 2],
    process_name: &str,
) {
    let test = test
        .favoured("a thread", &thread.blocks)
        .other(process_name, &process.blocks);
    report.claim_measured(id, test, [&process.measured, &thread.measured]);
}

/// One way to create a unit, with its figures.
pub struct Way {
    pub variant: Variant,
    pub mechanism: &'static str,
    pub latency: LatencyRecorder,
    block: LatencyRecorder,
    block_p50s: Vec<f64>,
    cpu: Duration,
    /// The runtime of the `tokio-task` way, made at its first run.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Way {
    pub fn new(variant: Variant, mechanism: &'static str) -> Way {
        Way {
            variant,
            mechanism,
            latency: LatencyRecorder::new(),
            block: LatencyRecorder::new(),
            block_p50s: Vec::new(),
            cpu: Duration::ZERO,
            runtime: None,
        }
    }

    /// Whether `--variant` asked for this way's side (`[process, thread]`; tasks run with the
    /// threads).
    pub fn wanted(&self, sides: [bool; 2]) -> bool {
        sides[usize::from(self.variant != Variant::Process)]
    }

    /// `n` creations, timed one by one; `timed` decides whether they count.
    pub fn run(&mut self, n: u64, tiny: &Program, timed: bool, shutdown: &Shutdown) -> Result<()> {
        if self.variant == Variant::Process {
            single_threaded()?;
        }
        // Children are reaped before each creation returns, so RUSAGE_CHILDREN holds them.
        let cpu_before = CpuClock::now(&[])?;
        self.block.reset();
        if self.variant == Variant::Task {
            self.create_tasks(n, shutdown)?;
        } else {
            for _ in 0..n {
                shutdown.check()?;
                let start = Instant::now();
                create_one(self.mechanism, tiny)
                    .with_context(|| format!("create a unit by {}", self.mechanism))?;
                self.block.record(start.elapsed());
            }
        }
        if timed {
            self.cpu += CpuClock::since(cpu_before, &[])?;
            self.latency.add(&self.block);
            self.block_p50s.push(self.block.p50() as f64);
        }
        Ok(())
    }

    /// `n` async tasks, all in one `block_on` of the way's runtime (entering the runtime is not
    /// creating a task), each timed on its own.
    fn create_tasks(&mut self, n: u64, shutdown: &Shutdown) -> Result<()> {
        if self.runtime.is_none() {
            let runtime = create::task_runtime().context("build a current-thread tokio runtime")?;
            self.runtime = Some(runtime);
        }
        let (runtime, block) = (self.runtime.as_ref().expect("just made"), &mut self.block);
        let stop = || shutdown.check().is_err();
        create::task_spawn_join(runtime, n, &mut |took| block.record(took), &stop)
            .context("create a unit by tokio-task")?;
        Ok(shutdown.check()?)
    }

    pub fn measurement(&self, name: &str, config: serde_json::Value) -> Measurement {
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

    /// Its block medians, with `measured`, the measurement written for it.
    pub fn figures(&self, measured: Measurement) -> Figures {
        Figures {
            mechanism: self.mechanism,
            blocks: self.block_p50s.clone(),
            measured,
        }
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
        "command" => create::command_wait(crate::TINY),
        "thread-spawn" => create::thread_spawn_join(),
        "pthread" => create::pthread_create_join(),
        "scoped-thread" => create::scoped_thread(),
        other => Err(std::io::Error::other(format!("no mechanism {other}"))),
    }
}

/// Waits (briefly) until this process has a single thread again: a thread that was just
/// joined may still be leaving the kernel. Every fork happens after this.
pub fn single_threaded() -> Result<()> {
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

/// The figures of `mechanism` among `all`, if it ran.
pub fn find<'a>(all: &'a [Figures], mechanism: &str) -> Option<&'a Figures> {
    all.iter().find(|f| f.mechanism == mechanism)
}
