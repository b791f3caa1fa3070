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
use std::time::Instant;

use anyhow::{Context, Result, bail};
use labkit::pin::{PinGuard, Placement};
use labkit::signals::Shutdown;
use labkit::{LatencyRecorder, Pin, Report, Variant};
use serde_json::json;
use tokio::sync::Notify;

use crate::contender::{self, Finished, Mechanism, Tally, Timing};
use crate::handoff::STOP;

/// The runtime, as the Report names it.
pub const RUNTIME: &str = "tokio current-thread";
/// Two tasks on one thread hand off without the thread ever blocking: at most this many
/// voluntary switches per round trip. (Involuntary ones, the thread preempted by other
/// threads on its CPU, are counted but not held against the hand-off: with eight copies of
/// this program on two CPUs, other threads' wake-ups preempt it often.)
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
    timing: Timing,
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
            timing: Timing::default(),
        })
    }

    /// `n` round trips in one `block_on` (entering the runtime is not a hand-off), each
    /// recorded in `block` if it is given; each must find the count the pong left.
    fn round_trips(
        &mut self,
        n: u64,
        mut block: Option<&mut LatencyRecorder>,
        shutdown: &Shutdown,
    ) -> Result<()> {
        let _pin = PinGuard::pin(self.placement.main).context("sched_setaffinity (main thread)")?;
        let (shared, next) = (&self.shared, &mut self.next);
        self.runtime.block_on(async {
            for _ in 0..n {
                shutdown.check()?;
                let start = Instant::now();
                shared.count.store(2 * *next + 1, Ordering::Relaxed);
                shared.to_pong.notify_one();
                shared.to_ping.notified().await;
                if let Some(block) = block.as_deref_mut() {
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
        self.round_trips(u64::from(n), None, shutdown)
    }

    /// `n` timed round trips, and the runtime thread's switches over them.
    pub fn run_block(&mut self, n: u64, shutdown: &Shutdown) -> Result<()> {
        let mut timing = std::mem::take(&mut self.timing);
        let timed = timing.block(&[], |block| self.round_trips(n, Some(block), shutdown));
        self.timing = timing;
        timed
    }

    /// Stops the pong task, records the measurements, and returns what the checks need. Both
    /// tasks ran on our thread: their switches are ours.
    pub fn finish(self, report: &mut Report) -> Result<Finished> {
        let TaskHandOff {
            runtime,
            shared,
            pong,
            next,
            timing,
            ..
        } = self;
        shared.count.store(STOP, Ordering::Relaxed);
        shared.to_pong.notify_one();
        let served = runtime.block_on(pong).context("the pong task panicked")?;
        if served != u64::from(next) {
            bail!("the pong task served {served} of {next} hand-offs");
        }
        let timed = timing.latency.len();
        let config = json!({ "pin": Pin::Same.as_str(), "runtime": RUNTIME });
        // Half a round trip: one hand-off between tasks (not a context switch).
        let kind = (Variant::Task, Mechanism::Notify);
        let m = contender::record(report, kind, config, &timing, "hand_off");
        Ok(Finished {
            label: format!("task/{} --pin same", Mechanism::Notify.as_str()),
            variant: Variant::Task,
            mechanism: Mechanism::Notify,
            pin: Pin::Same,
            measurement: m,
            block_p50s: timing.block_p50s,
            timed,
            sent: u64::from(next),
            ours: timing.switches,
            theirs: Tally {
                served,
                voluntary: timing.switches[0],
                involuntary: timing.switches[1],
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
    let per_trip = f.ours[0] as f64 / f.timed.max(1) as f64;
    report.check(
        "a hand-off between two tasks is no context switch",
        per_trip <= TASK_SWITCHES_PER_ROUND_TRIP,
        format!(
            "the runtime thread blocked (a voluntary switch) {} times in {} round trips: \
             {per_trip:.4} per round trip, at most {TASK_SWITCHES_PER_ROUND_TRIP} expected; \
             other threads on its CPU preempted it {} times (involuntary, not counted)",
            f.ours[0], f.timed, f.ours[1]
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use labkit::Measurement;
    use labkit::report::Status;

    /// The tasks' figures after `timed` round trips in which the runtime thread switched
    /// `[voluntary, involuntary]` times.
    fn finished(timed: u64, ours: [u64; 2]) -> Finished {
        let measurement = Measurement::value(
            "round_trip",
            Variant::Task,
            "tokio-notify",
            json!({}),
            "ns",
            250.0,
            None,
        );
        let theirs = Tally {
            served: timed,
            voluntary: ours[0],
            involuntary: ours[1],
        };
        Finished {
            label: "task/tokio-notify --pin same".into(),
            variant: Variant::Task,
            mechanism: Mechanism::Notify,
            pin: Pin::Same,
            measurement,
            block_p50s: vec![250.0],
            timed,
            sent: timed,
            ours,
            theirs,
        }
    }

    /// The check holds the thread to (almost) no voluntary switch, and can fail: a runtime
    /// thread that blocked once per round trip did not hand off in user space. Preemptions by
    /// other threads are not held against it.
    #[test]
    fn the_no_switch_check_fails_on_a_thread_that_blocks() {
        let status = |ours| {
            let mut report = Report::new("switch");
            check_switches(&mut report, &[finished(300, ours)]);
            report.checks[0].status
        };
        assert_eq!(
            status([0, 40]),
            Status::Pass,
            "preempted by others: not counted"
        );
        assert_eq!(
            status([300, 0]),
            Status::Fail,
            "blocked once per round trip"
        );
    }
}
