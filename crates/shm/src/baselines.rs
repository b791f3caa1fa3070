//! Step 3: the baselines the ring's figures are read against, measured in the same run, a
//! block at a time between the ring's blocks (the host's load and the vCPUs' placement change
//! during a run: figures from another moment would mislead). One core's `memcpy`, of 64 KiB
//! blocks that stay in its cache and of buffers far larger than it (what "memcpy bandwidth"
//! usually means: the memory's pace); with the sides on two CPUs, 64 KiB blocks copied from one
//! CPU to the other ([`cross_core_copy`]) and two threads spinning on one atomic word
//! ([`atomic_ping_pong`], beside the round trips).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::measure::{cpu_ns_per_op, mib_per_s};
use labkit::pin::pin_thread_to;
use labkit::{CpuClock, LatencyRecorder, Measurement, Pin, Report, Variant};
use serde_json::json;

use crate::Wait;
use crate::measure::Plan;

/// Bytes copied for each memcpy baseline.
const MEMCPY_BYTES: u64 = 256 << 20;

/// The `memcpy` and cross-core baselines, a block at a time between the stream blocks of one
/// size. (The atomic ping-pong runs beside the round trips.)
pub struct Baselines {
    /// One core's copies: in cache, through memory.
    copies: [Copying; 2],
    /// The cross-core copy's bytes and time, with `--pin split`.
    cross_core: Option<(u64, Duration)>,
    peer: Option<usize>,
    /// The run's `--wait`, which the streams beside them used.
    wait: Wait,
}

/// One `memcpy` baseline: its buffers (written before any clock runs: no page fault is timed)
/// and what its blocks copied, in how long, for how much CPU.
struct Copying {
    src: Vec<u8>,
    dst: Vec<u8>,
    rounds: u64,
    took: Duration,
    cpu: Duration,
}

impl Copying {
    fn new(len: usize) -> Copying {
        // Both buffers written (zeroed pages are only promised) and copied once.
        let (src, mut dst) = (vec![7u8; len], vec![1u8; len]);
        dst.copy_from_slice(&src);
        Copying {
            src,
            dst,
            rounds: 0,
            took: Duration::ZERO,
            cpu: Duration::ZERO,
        }
    }
}

impl Baselines {
    pub fn new(plan: &Plan) -> Baselines {
        Baselines {
            copies: [Copying::new(64 << 10), Copying::new(plan.memory_copy)],
            // Two sides placed by the scheduler may share a CPU: no cross-core figure then.
            cross_core: (plan.pin == Pin::Split && plan.sides[1]).then_some((0, Duration::ZERO)),
            peer: plan.placement.peer,
            wait: plan.wait,
        }
    }

    /// One block of each: `1 / blocks` of [`MEMCPY_BYTES`] per baseline.
    pub fn block(&mut self, blocks: u64) -> Result<()> {
        let bytes = MEMCPY_BYTES / blocks;
        for c in &mut self.copies {
            let rounds = (bytes / c.src.len() as u64).max(1);
            let cpu_before = CpuClock::now(&[])?;
            let start = Instant::now();
            for _ in 0..rounds {
                c.dst.copy_from_slice(std::hint::black_box(&c.src));
                std::hint::black_box(&mut c.dst);
            }
            c.took += start.elapsed();
            c.cpu += CpuClock::since(cpu_before, &[])?;
            c.rounds += rounds;
        }
        if let Some((moved, took)) = &mut self.cross_core {
            let n = (bytes / CROSS_BLOCK as u64).max(1);
            *took += cross_core_copy(n, self.peer)?;
            *moved += n * CROSS_BLOCK as u64;
        }
        Ok(())
    }

    /// Writes the baselines' figures into `report`; returns one core's `memcpy` figures (in
    /// cache, then through memory), which the summary reads the stream against.
    pub fn report(&self, report: &mut Report) -> Vec<Measurement> {
        let mut memcpy = Vec::new();
        for c in self.copies.iter().filter(|c| c.rounds > 0) {
            let m = Measurement::value(
                "throughput",
                Variant::Serial,
                "memcpy",
                json!({ "bytes": c.src.len() }),
                "MiB/s",
                mib_per_s(c.rounds * c.src.len() as u64, c.took),
                cpu_ns_per_op(c.cpu, c.rounds),
            );
            report.measure(m.clone());
            memcpy.push(m);
        }
        if let Some((moved, took)) = self.cross_core.filter(|&(moved, _)| moved > 0) {
            report.measure(Measurement::value(
                "throughput",
                Variant::Thread,
                "cross-core-copy",
                json!({ "bytes": CROSS_BLOCK, "pin": "split", "wait": self.wait.name() }),
                "MiB/s",
                mib_per_s(moved, took),
                None,
            ));
        }
        memcpy
    }
}

/// The message size whose streams the baselines run beside: the largest up to 64 KiB (a size
/// a ring's slots keep in the caches), or the smallest there is.
pub fn stream_size_to_compare(sizes: &[u64]) -> u64 {
    let small = sizes.iter().copied().filter(|&b| b <= 64 << 10).max();
    small
        .or_else(|| sizes.iter().copied().min())
        .unwrap_or(64 << 10)
}

/// Two threads, this one and one on `peer`, spinning on one atomic word: `n` round trips of a
/// cache line, the floor under any spinning hand-off (with `--pin split`).
pub fn atomic_ping_pong(n: u64, peer: Option<usize>) -> Result<LatencyRecorder> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let word = AtomicU64::new(0);
    let mut lat = LatencyRecorder::new();
    std::thread::scope(|s| -> Result<()> {
        let word = &word;
        std::thread::Builder::new()
            .name("atomic-pong".into())
            .spawn_scoped(s, move || {
                pin_thread_to(peer);
                for i in 0..n {
                    while word.load(Ordering::Acquire) != 2 * i + 1 {
                        std::hint::spin_loop();
                    }
                    word.store(2 * i + 2, Ordering::Release);
                }
            })
            .context("spawn the atomic ping-pong thread")?;
        for i in 0..n {
            let start = Instant::now();
            word.store(2 * i + 1, Ordering::Release);
            while word.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
            lat.record(start.elapsed());
        }
        Ok(())
    })?;
    Ok(lat)
}

/// The atomic ping-pong's figure, measured beside the round trips of this run's `--wait`
/// (`wait`): its figure is theirs.
pub fn atomic_spin(atomic: &LatencyRecorder, wait: Wait) -> Measurement {
    Measurement::histogram(
        "round_trip",
        Variant::Thread,
        "atomic-spin",
        json!({ "pin": "split", "wait": wait.name() }),
        atomic,
        None,
    )
}

/// The cross-core copy's block.
const CROSS_BLOCK: usize = 64 << 10;

/// With `--pin split`: the bandwidth of bytes that *cross* cores, which every stream
/// between two sides pays and single-core `memcpy` does not. This thread copies `blocks` blocks
/// of 64 KiB into two buffers in turn, a thread on `peer` copies each out; no checksum, no
/// ring. Returns how long it took. A checked stream through the ring is read against both
/// baselines.
fn cross_core_copy(blocks: u64, peer: Option<usize>) -> Result<Duration> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    const BLOCK: usize = CROSS_BLOCK;
    let bufs = [Mutex::new(vec![0u8; BLOCK]), Mutex::new(vec![0u8; BLOCK])];
    let (filled, drained) = (AtomicU64::new(0), AtomicU64::new(0));
    let src = vec![7u8; BLOCK];
    let took = std::thread::scope(|s| {
        let (bufs, filled, drained) = (&bufs, &filled, &drained);
        let reader = std::thread::Builder::new()
            .name("copy-reader".into())
            .spawn_scoped(s, move || {
                pin_thread_to(peer);
                let mut out = vec![0u8; BLOCK];
                for k in 0..blocks {
                    while filled.load(Ordering::Acquire) <= k {
                        std::hint::spin_loop();
                    }
                    // Nothing here panics while holding the lock (equal lengths), so it is never
                    // poisoned; if it were, the bytes would still be there.
                    out.copy_from_slice(
                        &bufs[(k % 2) as usize]
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()),
                    );
                    std::hint::black_box(&mut out);
                    drained.store(k + 1, Ordering::Release);
                }
            })
            .context("spawn the cross-core copy's reader thread")?;
        // Waits until the reader has drained `k` blocks, or fails if it is gone.
        let wait_drained = |k: u64| -> Result<()> {
            while drained.load(Ordering::Acquire) < k {
                if reader.is_finished() && drained.load(Ordering::Acquire) < k {
                    bail!("the cross-core copy's reader thread ended early");
                }
                std::hint::spin_loop();
            }
            Ok(())
        };
        let start = Instant::now();
        for k in 0..blocks {
            // Both buffers full: wait for the reader to drain the older one.
            wait_drained(k.saturating_sub(1))?;
            bufs[(k % 2) as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .copy_from_slice(std::hint::black_box(&src));
            filled.store(k + 1, Ordering::Release);
        }
        wait_drained(blocks)?;
        Ok::<_, anyhow::Error>(start.elapsed())
    })?;
    Ok(took)
}
