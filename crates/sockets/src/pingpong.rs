//! Step 1: round trips. Each contender's near side sends a frame and waits for its echo; the
//! contenders alternate block by block after a warm-up, and both ends check every frame.

use std::io;
use std::time::{Duration, Instant};

use crate::far::Far;
use anyhow::Result;
use labkit::measure::{block_sizes, cpu_ns_per_op};
use labkit::report::placement_text;
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder, Measurement, Report};
use serde_json::json;

use crate::Plan;
use crate::channel;
use crate::contender::{self, Contender, Near, Series};
use crate::wire;

/// Untimed round trips per contender before the first block.
const WARMUP: u64 = 200;

/// The near side of a ping-pong.
enum Pinger {
    Wire(wire::Pinger),
    Channel(channel::Pinger),
}

impl Pinger {
    fn round_trip(&mut self) -> io::Result<()> {
        match self {
            Pinger::Wire(p) => p.round_trip(),
            Pinger::Channel(p) => p.round_trip(),
        }
    }
}

/// One contender's ping-pong and its measurements.
struct Link {
    contender: Contender,
    // `far` before `pinger`, for the drop order: a child is killed before our end closes, so
    // on an early exit it dies quietly instead of reporting the EOF it would see.
    far: Far<u64>,
    pinger: Pinger,
    latency: LatencyRecorder,
    block: LatencyRecorder,
    block_p50s: Vec<f64>,
    cpu: Duration,
    sent: u64,
}

impl Link {
    fn start(contender: Contender, plan: &Plan) -> Result<Link> {
        let (near, far) = contender::start(contender, "echo", plan)?;
        let pinger = match near {
            Near::Wire(w) => Pinger::Wire(wire::Pinger::new(w, plan.bytes)),
            Near::Channel(end) => Pinger::Channel(channel::Pinger::new(end, plan.bytes)),
        };
        Ok(Link {
            contender,
            far,
            pinger,
            latency: LatencyRecorder::new(),
            block: LatencyRecorder::new(),
            block_p50s: Vec::new(),
            cpu: Duration::ZERO,
            sent: 0,
        })
    }

    fn round_trip(&mut self, shutdown: &Shutdown) -> Result<()> {
        shutdown.check()?;
        self.pinger.round_trip().map_err(|e| self.far.broke(e))?;
        self.sent += 1;
        Ok(())
    }

    /// `n` timed round trips; the block's median goes to the verdict, its samples to the total.
    fn run_block(&mut self, n: u64, shutdown: &Shutdown) -> Result<()> {
        let pids = self.far.pids();
        let cpu_before = CpuClock::now(&pids)?;
        self.block.reset();
        for _ in 0..n {
            let start = Instant::now();
            self.round_trip(shutdown)?;
            self.block.record(start.elapsed());
        }
        self.cpu += CpuClock::since(cpu_before, &pids)?;
        self.latency.add(&self.block);
        self.block_p50s.push(self.block.p50() as f64);
        Ok(())
    }

    /// Ends the exchange; returns what the far side counted, and for a channel whether every
    /// buffer came back unmoved.
    fn finish(self) -> Result<(u64, Option<bool>)> {
        let Link {
            pinger, mut far, ..
        } = self;
        let (counted, same) = match pinger {
            Pinger::Wire(p) => (p.finish().map_err(|e| far.broke(e))?, None),
            Pinger::Channel(p) => {
                let same = p.same_buffer;
                (p.finish().map_err(|e| far.broke(e))?, Some(same))
            }
        };
        far.finish()?;
        Ok((counted, same))
    }
}

/// Step 1: round trips, contenders alternating block by block; each contender's figures, with
/// every frame checked.
pub fn run(
    report: &mut Report,
    contenders: &[Contender],
    plan: &Plan,
    shutdown: &Shutdown,
) -> Result<Vec<Series>> {
    let mut links: Vec<Link> = contenders
        .iter()
        .map(|&c| Link::start(c, plan))
        .collect::<Result<_>>()?;
    let warmup = WARMUP.min(plan.messages);
    for link in &mut links {
        (0..warmup).try_for_each(|_| link.round_trip(shutdown))?;
    }
    for n in block_sizes(plan.messages, plan.blocks.min(plan.messages)) {
        for link in &mut links {
            link.run_block(n, shutdown)?;
        }
    }
    let mut series = Vec::new();
    let mut counts = Vec::new();
    let mut all_arrived = true;
    let mut moved = None;
    for link in links {
        let c = link.contender;
        let measurement = Measurement::histogram(
            "round_trip",
            c.variant,
            c.mech.name(),
            json!({ "bytes": plan.bytes, "pin": plan.pin.as_str() }),
            &link.latency,
            cpu_ns_per_op(link.cpu, link.latency.len()),
        );
        report.measure(measurement.clone());
        let blocks = link.block_p50s.clone();
        series.push(Series {
            contender: c,
            blocks,
            measurement,
        });
        let sent = link.sent;
        let (counted, same) = link.finish()?;
        all_arrived &= sent == plan.messages + warmup && counted == sent;
        counts.push(format!("{}: {sent} sent, {counted} counted", c.label()));
        moved = moved.or(same);
    }
    check_arrivals(report, plan, all_arrived, &counts, moved);
    Ok(series)
}

/// The checks of step 1: every frame arrived (`counts`: sent and counted per contender), and
/// the channel's buffers came back unmoved (`moved`, if a channel ran).
fn check_arrivals(
    report: &mut Report,
    plan: &Plan,
    all_arrived: bool,
    counts: &[String],
    moved: Option<bool>,
) {
    let place = placement_text(plan.pin.as_str());
    report.check(
        &format!("every frame arrived once, in order, intact ({place})"),
        all_arrived,
        format!(
            "length, sequence number and CRC-32 checked at the far end, the echo compared byte \
             for byte at ours; {}",
            counts.join("; ")
        ),
    );
    if let Some(moved) = moved {
        report.check(
            &format!("the channel moved buffers without copying them ({place})"),
            moved,
            "every echo came back in the very buffer sent (same heap address): threads share memory",
        );
    }
}
