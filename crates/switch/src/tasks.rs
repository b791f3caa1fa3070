//! The third model: two async tasks handing off to each other on one runtime thread. A task
//! that waits returns to the runtime's loop, which polls the other: a hand-off is a function
//! return and a call, in user space, on the thread that was already running. No context switch
//! at all, which the runtime thread's own switch counts show.
//!
//! Both tasks run on tokio's current-thread runtime, driven by our (pinned) thread with
//! `block_on`: `ping` is the block's loop, `pong` a spawned task that lives across blocks.
//! Each wakes the other with its own `Notify` (a wake-up before the wait is kept as a permit,
//! so none is lost) and they count the hand-offs in one shared word, which each side checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::measure::cpu_ns_per_op;
use labkit::pin::{PinGuard, Placement};
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder, Measurement, Pin, Report, Variant};
use serde_json::json;
use tokio::sync::Notify;

use crate::contender::{Finished, Mechanism, Tally};
use crate::handoff::{self, STOP};

/// The runtime, as the Report names it.
pub const RUNTIME: &str = "tokio current-thread";
/// Two tasks on one thread hand off without a switch: at most this many per round trip (the
/// thread itself may be preempted now and then).
const TASK_SWITCHES_PER_ROUND_TRIP: f64 = 0.05;

/// What the two tasks share: a wake-up each, and the hand-off count.
struct Shared {
    to_pong: Notify,
    to_ping: Notify,
    /// Odd after a ping, even after a pong; `STOP` ends the pong.
    count: AtomicU32,
}

/// Two tasks on one runtime thread, pinned to `placement.main`, handing off.
pub struct TaskHandOff {
    placement: Placement,
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    pong: tokio::task::JoinHandle<u64>,
    next: u32,
    latency: LatencyRecorder,
    block: LatencyRecorder,
    block_p50s: Vec<f64>,
    cpu: Duration,
    switches: [u64; 2],
}

impl TaskHandOff {
    /// The runtime, and the pong task spawned on it, waiting for the first ping.
    pub fn start(placement: Placement) -> Result<TaskHandOff> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .context("build a current-thread tokio runtime")?;
        let shared = Arc::new(Shared {
            to_pong: Notify::new(),
            to_ping: Notify::new(),
            count: AtomicU32::new(0),
        });
        let theirs = Arc::clone(&shared);
        let pong = runtime.spawn(async move {
            let mut served = 0;
            loop {
                theirs.to_pong.notified().await;
                let seen = theirs.count.load(Ordering::Relaxed);
                if seen == STOP {
                    return served;
                }
                if seen.is_multiple_of(2) {
                    // Woken out of turn: hand back, and let ping's check of the count say so.
                    theirs.to_ping.notify_one();
                    return served;
                }
                theirs.count.store(seen + 1, Ordering::Relaxed);
                served += 1;
                theirs.to_ping.notify_one();
            }
        });
        Ok(TaskHandOff {
            placement,
            runtime,
            shared,
            pong,
            next: 0,
            latency: LatencyRecorder::new(),
            block: LatencyRecorder::new(),
            block_p50s: Vec::new(),
            cpu: Duration::ZERO,
            switches: [0, 0],
        })
    }

    /// `n` round trips in one `block_on` (entering the runtime is not a hand-off), recorded in
    /// `block` if it is given; each must find the count the pong left.
    fn round_trips(&mut self, n: u64, timed: bool, shutdown: &Shutdown) -> Result<()> {
        let _pin = PinGuard::pin(self.placement.main).context("sched_setaffinity (main thread)")?;
        let (shared, block, next) = (&self.shared, &mut self.block, &mut self.next);
        self.runtime.block_on(async {
            for _ in 0..n {
                shutdown.check()?;
                let start = Instant::now();
                shared.count.store(2 * *next + 1, Ordering::Relaxed);
                shared.to_pong.notify_one();
                shared.to_ping.notified().await;
                if timed {
                    block.record(start.elapsed());
                }
                let seen = shared.count.load(Ordering::Relaxed);
                if seen != 2 * *next + 2 {
                    bail!("hand-off {next}: the pong task left {seen}");
                }
                *next += 1;
            }
            Ok(())
        })
    }

    /// Untimed round trips (the warm-up).
    pub fn warm_up(&mut self, n: u32, shutdown: &Shutdown) -> Result<()> {
        self.round_trips(u64::from(n), false, shutdown)
    }

    /// `n` timed round trips, and the runtime thread's switches over them.
    pub fn run_block(&mut self, n: u64, shutdown: &Shutdown) -> Result<()> {
        let cpu_before = CpuClock::now(&[])?;
        let before = handoff::switches().context("getrusage(RUSAGE_THREAD)")?;
        self.block.reset();
        self.round_trips(n, true, shutdown)?;
        let after = handoff::switches().context("getrusage(RUSAGE_THREAD)")?;
        self.switches[0] += after.0 - before.0;
        self.switches[1] += after.1 - before.1;
        self.cpu += CpuClock::since(cpu_before, &[])?;
        self.latency.add(&self.block);
        self.block_p50s.push(self.block.p50() as f64);
        Ok(())
    }

    /// Stops the pong task, records the measurements, and returns what the checks need. Both
    /// tasks ran on our thread: their switches are ours.
    pub fn finish(self, report: &mut Report) -> Result<Finished> {
        let TaskHandOff {
            runtime,
            shared,
            pong,
            next,
            latency,
            block_p50s,
            cpu,
            switches,
            ..
        } = self;
        shared.count.store(STOP, Ordering::Relaxed);
        shared.to_pong.notify_one();
        let served = runtime.block_on(pong).context("the pong task panicked")?;
        if served != u64::from(next) {
            bail!("the pong task served {served} of {next} hand-offs");
        }
        let timed = latency.len();
        let config = json!({ "pin": Pin::Same.as_str(), "runtime": RUNTIME });
        let m = Measurement::histogram(
            "round_trip",
            Variant::Task,
            Mechanism::Notify.as_str(),
            config.clone(),
            &latency,
            cpu_ns_per_op(cpu, timed),
        );
        report.measure(m.clone());
        // Half a round trip: one hand-off between tasks (not a context switch).
        report.measure(Measurement::value(
            "hand_off",
            Variant::Task,
            Mechanism::Notify.as_str(),
            config,
            "ns",
            latency.p50() as f64 / 2.0,
            None,
        ));
        Ok(Finished {
            label: format!("task/{} --pin same", Mechanism::Notify.as_str()),
            variant: Variant::Task,
            mechanism: Mechanism::Notify,
            pin: Pin::Same,
            measurement: m,
            block_p50s,
            timed,
            sent: u64::from(next),
            ours: switches,
            theirs: Tally {
                served,
                voluntary: switches[0],
                involuntary: switches[1],
            },
        })
    }
}

/// Step 3 of `main.rs`, for the tasks: their hand-offs made (almost) no context switch of the
/// runtime thread.
pub fn check_switches(report: &mut Report, all: &[Finished]) {
    let Some(f) = all.iter().find(|f| f.variant == Variant::Task) else {
        return;
    };
    let per_trip = (f.ours[0] + f.ours[1]) as f64 / f.timed.max(1) as f64;
    report.check(
        "a hand-off between two tasks is no context switch",
        per_trip <= TASK_SWITCHES_PER_ROUND_TRIP,
        format!(
            "the runtime thread switched {} times ({} voluntary, {} involuntary) in {} round \
             trips: {per_trip:.4} per round trip, at most {TASK_SWITCHES_PER_ROUND_TRIP} expected",
            f.ours[0] + f.ours[1],
            f.ours[0],
            f.ours[1],
            f.timed
        ),
    );
}
