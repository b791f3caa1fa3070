//! Measuring: latency histograms, throughput, and CPU time per operation.
//!
//! Latency is always a distribution over many operations after a warm-up (hdrhistogram, ns);
//! throughput is bytes over the timed section only; CPU time counts every process involved.

use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;
use nix::time::{ClockId, clock_getcpuclockid, clock_gettime};
use nix::unistd::Pid;

/// The longest latency a histogram holds (60 s); longer ones are recorded as 60 s.
const HIGHEST_NS: u64 = 60_000_000_000;

/// A latency distribution in nanoseconds, three significant figures.
#[derive(Clone, Debug)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder from 1 ns to 60 s. It allocates once, here, never while recording.
    pub fn new() -> LatencyRecorder {
        let histogram = Histogram::new_with_bounds(1, HIGHEST_NS, 3)
            .expect("constant histogram bounds are valid");
        LatencyRecorder { histogram }
    }

    /// Records one operation's latency.
    #[inline]
    pub fn record(&mut self, elapsed: Duration) {
        self.record_ns(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one latency given in nanoseconds (clamped into 1 ns ..= 60 s).
    #[inline]
    pub fn record_ns(&mut self, ns: u64) {
        self.histogram.saturating_record(ns.clamp(1, HIGHEST_NS));
    }

    /// Adds every sample of `other` (e.g. one block into the whole run).
    pub fn add(&mut self, other: &LatencyRecorder) {
        self.histogram
            .add(&other.histogram)
            .expect("recorders share bounds");
    }

    /// Forgets every sample, keeping the allocation.
    pub fn reset(&mut self) {
        self.histogram.reset();
    }

    /// The number of samples.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The median in nanoseconds.
    pub fn p50(&self) -> u64 {
        self.histogram.value_at_quantile(0.5)
    }

    /// The underlying histogram, for percentiles beyond the median.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }
}

/// Mebibytes per second for `bytes` moved in `elapsed`.
pub fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9)
}

/// CPU time (user + system) used so far by this process and by the children named.
///
/// `getrusage` covers this process (every thread) and, through `RUSAGE_CHILDREN`, only children
/// already reaped; a child still running is read through its CPU-time clock
/// (`clock_getcpuclockid`), which the kernel keeps to the nanosecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuClock(Duration);

impl CpuClock {
    /// Reads the CPU time of this process, its reaped children, and the living `children`.
    pub fn now(children: &[Pid]) -> Result<CpuClock> {
        let mut total = Duration::ZERO;
        for who in [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN] {
            let usage = getrusage(who).context("getrusage")?;
            let us = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
            total += Duration::from_micros(u64::try_from(us).unwrap_or(0));
        }
        for &pid in children {
            total += Self::of_process(pid)?;
        }
        Ok(CpuClock(total))
    }

    /// The CPU time one living process has used.
    pub fn of_process(pid: Pid) -> Result<Duration> {
        let clock: ClockId =
            clock_getcpuclockid(pid).with_context(|| format!("clock_getcpuclockid({pid})"))?;
        let ts =
            clock_gettime(clock).with_context(|| format!("clock_gettime(CPU clock of {pid})"))?;
        Ok(Duration::new(
            u64::try_from(ts.tv_sec()).unwrap_or(0),
            u32::try_from(ts.tv_nsec()).unwrap_or(0),
        ))
    }

    /// CPU time used since `earlier`, read again now for `children`: the same living ones, or
    /// none once they have been reaped (their time is then in `RUSAGE_CHILDREN`).
    pub fn since(earlier: CpuClock, children: &[Pid]) -> Result<Duration> {
        Ok(CpuClock::now(children)?.0.saturating_sub(earlier.0))
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    // One median in the lab: the verdict's (the mean of the middle two for an even count).
    let m = crate::verdict::median(values);
    if m.is_nan() { 0.0 } else { m }
}

/// How many operations each of `blocks` alternating blocks gets, so that they add up to `total`:
/// the first `total % blocks` blocks take one more.
pub fn block_sizes(total: u64, blocks: u64) -> impl Iterator<Item = u64> {
    (0..blocks).map(move |block| total / blocks + u64::from(block < total % blocks))
}

/// CPU nanoseconds per operation, or `None` when there were no operations.
pub fn cpu_ns_per_op(cpu: Duration, ops: u64) -> Option<f64> {
    (ops > 0).then(|| cpu.as_nanos() as f64 / ops as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_add_up_and_differ_by_at_most_one() {
        assert_eq!(block_sizes(10, 3).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(block_sizes(6, 3).collect::<Vec<_>>(), [2, 2, 2]);
        assert_eq!(block_sizes(2, 3).collect::<Vec<_>>(), [1, 1, 0]);
        assert_eq!(block_sizes(5, 0).count(), 0);
    }

    #[test]
    fn recorder_gives_percentiles_in_ns() {
        let mut r = LatencyRecorder::new();
        for ns in 1..=1000 {
            r.record_ns(ns * 1000);
        }
        assert_eq!(r.len(), 1000);
        let p50 = r.p50() as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.01, "p50 {p50}");
        r.reset();
        assert!(r.is_empty());
    }

    #[test]
    fn extreme_latencies_are_clamped_not_lost() {
        let mut r = LatencyRecorder::new();
        r.record_ns(0);
        r.record(Duration::from_secs(3600));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn throughput_is_bytes_over_time() {
        let v = mib_per_s(64 * 1024 * 1024, Duration::from_secs(2));
        assert!((v - 32.0).abs() < 1e-9);
    }

    #[test]
    fn cpu_clock_sees_work_in_this_process() {
        // Spin until the clock has counted 5 ms of our CPU time: no assumption about how much
        // CPU a busy machine gives us, only a generous guard against a clock that never moves.
        let start = CpuClock::now(&[]).unwrap();
        let guard = std::time::Instant::now();
        let mut x = 0u64;
        while CpuClock::since(start, &[]).unwrap() < Duration::from_millis(5) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            assert!(
                guard.elapsed() < Duration::from_secs(60),
                "the CPU clock never advanced"
            );
        }
        assert!(CpuClock::of_process(nix::unistd::getpid()).unwrap() > Duration::ZERO);
    }
}
