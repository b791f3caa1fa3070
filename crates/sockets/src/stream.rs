//! Step 2: one-way streams. Each contender's near side sends `--total` bytes per block in
//! 64 KiB frames; the far side checks each frame's number and checksum, and confirms its count
//! after every block.

use std::time::{Duration, Instant};

use crate::far::Far;
use anyhow::Result;
use labkit::measure::{cpu_ns_per_op, mib_per_s};
use labkit::report::{format_bytes, placement_text};
use labkit::signals::Shutdown;
use labkit::{CpuClock, Measurement, Report};
use serde_json::json;

use crate::Plan;
use crate::channel;
use crate::contender::{self, Contender, Near, Series};
use crate::wire::{self, Wire};

/// The frame size of streams.
pub const STREAM_FRAME: usize = 64 * 1024;
/// Buffers the channel contender keeps in flight in a stream.
pub const CHANNEL_BUFFERS: usize = 4;

/// The near side of a one-way stream.
enum Feed {
    Wire {
        wire: Box<dyn Wire>,
        frame: Vec<u8>,
        next: u64,
    },
    Channel(channel::Streamer),
}

/// One contender's stream and its measurements.
struct Pipeline {
    contender: Contender,
    far: Far<u64>, // Before `feed`, for the drop order: see `Link` in `pingpong`.
    feed: Feed,
    block_mib_s: Vec<f64>,
    elapsed: Duration,
    cpu: Duration,
    /// Frames the far side said it had checked, after the last block.
    confirmed: u64,
}

impl Pipeline {
    fn start(contender: Contender, plan: &Plan) -> Result<Pipeline> {
        let (near, far) = contender::start(contender, "sink", plan)?;
        let feed = match near {
            Near::Wire(wire) => {
                let mut frame = vec![0u8; STREAM_FRAME];
                wire::fill(&mut frame, 0);
                Feed::Wire {
                    wire,
                    frame,
                    next: 0,
                }
            }
            Near::Channel(end) => {
                Feed::Channel(channel::Streamer::new(end, STREAM_FRAME, CHANNEL_BUFFERS))
            }
        };
        Ok(Pipeline {
            contender,
            far,
            feed,
            block_mib_s: Vec::new(),
            elapsed: Duration::ZERO,
            cpu: Duration::ZERO,
            confirmed: 0,
        })
    }

    /// Sends `frames` frames, timed, and has the far side confirm it counted them all.
    fn run_block(&mut self, frames: u64, shutdown: &Shutdown) -> Result<()> {
        shutdown.check()?;
        let pids = self.far.pids();
        let cpu_before = CpuClock::now(&pids)?;
        let keep_going = || shutdown.check().is_ok();
        let start = Instant::now();
        let sent = match &mut self.feed {
            Feed::Wire { wire, frame, next } => {
                wire::send_frames(&mut **wire, frame, *next, frames, keep_going)
                    .and_then(|()| wire::receipt_so_far(&mut **wire, *next + frames))
                    .inspect(|_| *next += frames)
            }
            Feed::Channel(s) => s.send(frames, keep_going),
        };
        let took = start.elapsed();
        self.confirmed = sent.map_err(|e| self.far.broke(e))?;
        self.cpu += CpuClock::since(cpu_before, &pids)?;
        self.elapsed += took;
        self.block_mib_s
            .push(mib_per_s(frames * STREAM_FRAME as u64, took));
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let Pipeline { feed, mut far, .. } = self;
        match feed {
            Feed::Wire { mut wire, next, .. } => {
                wire::end_stream(&mut *wire, next).map_err(|e| far.broke(e))?;
            }
            Feed::Channel(streamer) => drop(streamer), // Hanging up ends the far thread.
        }
        far.finish().map(drop)
    }
}

/// Step 2: one-way streams, contenders alternating block by block; each contender's figures,
/// with every frame checked and counted.
pub fn run(
    report: &mut Report,
    contenders: &[Contender],
    plan: &Plan,
    shutdown: &Shutdown,
) -> Result<Vec<Series>> {
    let frames = plan.total.div_ceil(STREAM_FRAME as u64);
    let mut pipelines: Vec<Pipeline> = contenders
        .iter()
        .map(|&c| Pipeline::start(c, plan))
        .collect::<Result<_>>()?;
    for _ in 0..plan.blocks {
        for p in &mut pipelines {
            p.run_block(frames, shutdown)?;
        }
    }
    let mut series = Vec::new();
    let count = frames * plan.blocks;
    let mut short = Vec::new();
    for p in pipelines {
        let c = p.contender;
        let measurement = Measurement::value(
            "throughput",
            c.variant,
            c.mech.name(),
            json!({ "bytes": STREAM_FRAME, "pin": plan.pin.as_str() }),
            "MiB/s",
            mib_per_s(count * STREAM_FRAME as u64, p.elapsed),
            cpu_ns_per_op(p.cpu, count),
        );
        report.measure(measurement.clone());
        let blocks = p.block_mib_s.clone();
        series.push(Series {
            contender: c,
            blocks,
            measurement,
        });
        if p.confirmed != count {
            short.push(format!("{}: {} of {count}", c.label(), p.confirmed));
        }
        p.finish()?;
    }
    // A frame the far end finds lost, repeated, reordered or corrupt stops the run at once
    // (exit 1); here, the counts it confirmed must add up to every frame we sent.
    report.check(
        &format!(
            "every stream arrived whole ({})",
            placement_text(plan.pin.as_str())
        ),
        short.is_empty(),
        if short.is_empty() {
            format!(
                "{} blocks of {frames} frames of {} per contender; the far end checked each \
                 frame's number, length and CRC-32 and confirmed all {count} by count",
                plan.blocks,
                format_bytes(STREAM_FRAME as u64)
            )
        } else {
            format!("frames confirmed by the far end: {}", short.join("; "))
        },
    );
    Ok(series)
}
