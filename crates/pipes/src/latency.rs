//! Step 1, round trips: each contender's ping-pong link is started, warmed up, then timed round
//! trip by round trip in blocks that alternate with the other contenders' blocks; both ends
//! count the messages, and the channel's buffers are watched for copies.

use std::io::{PipeReader, PipeWriter};
use std::time::{Duration, Instant};

use crate::far::Far;
use anyhow::Result;
use crossbeam_channel::bounded;
use labkit::measure::{block_sizes, cpu_ns_per_op};
use labkit::report::placement_text;
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder, Measurement, Report};
use serde_json::json;

use crate::contender::{Contender, Series, start_pipe_peer};
use crate::pingpong::{self, ChannelPinger, RoundTrip, StreamPinger};
use crate::{Placed, Plan, WARMUP};

/// What step 1 measured at one placement.
struct RoundTrips {
    series: Vec<Series>,
    /// Per contender: round trips made by us, and messages the far side counted.
    counts: Vec<(Contender, u64, u64)>,
    /// What each count must be: the warm-up and the timed round trips.
    expected: u64,
    /// Whether every channel echo came back in the very buffer sent (if the channel ran).
    channel_moved: Option<bool>,
}

impl RoundTrips {
    /// Whether both ends of every link counted every message.
    fn all_arrived(&self) -> bool {
        self.counts
            .iter()
            .all(|&(_, sent, echoed)| sent == self.expected && echoed == self.expected)
    }
}

/// Step 1 at one placement: every contender's round trips, measured into `report` with the
/// checks that every message arrived; returns each contender's figures for the verdicts.
pub fn run(
    report: &mut Report,
    contenders: &[Contender],
    plan: &Plan,
    at: Placed,
    shutdown: &Shutdown,
) -> Result<Vec<Series>> {
    let done = measure(contenders, plan, at, shutdown)?;
    for s in &done.series {
        report.measure(s.measurement.clone());
    }
    let place = placement_text(at.pin.as_str());
    let counts: Vec<String> = (done.counts.iter())
        .map(|(c, sent, echoed)| format!("{}: {sent} sent, {echoed} echoed", c.label()))
        .collect();
    report.check(
        &format!("every message arrived once, in order, intact ({place})"),
        done.all_arrived(),
        format!(
            "sequence numbers and payloads checked at both ends; {}",
            counts.join("; ")
        ),
    );
    if let Some(moved) = done.channel_moved {
        report.check(
            &format!("the channel moved buffers without copying them ({place})"),
            moved,
            "every echo came back in the very buffer sent (same heap address): threads share memory",
        );
    }
    Ok(done.series)
}

/// Round trips for every contender: links started, warmed up, then timed in alternating blocks.
fn measure(
    contenders: &[Contender],
    plan: &Plan,
    at: Placed,
    shutdown: &Shutdown,
) -> Result<RoundTrips> {
    let mut links = contenders
        .iter()
        .map(|&c| start_link(c, plan.bytes, at.cpus.peer))
        .collect::<Result<Vec<_>>>()?;
    let warmup = WARMUP.min(plan.messages);
    for link in &mut links {
        (0..warmup).try_for_each(|_| link.round_trip(shutdown))?;
    }
    for n in block_sizes(plan.messages, plan.blocks) {
        for link in &mut links {
            link.run_block(n, shutdown)?;
        }
    }
    let mut done = RoundTrips {
        series: Vec::new(),
        counts: Vec::new(),
        expected: plan.messages + warmup,
        channel_moved: None,
    };
    for link in links {
        let contender = link.contender;
        let measurement = Measurement::histogram(
            "round_trip",
            contender.variant(),
            contender.mechanism(),
            json!({ "bytes": plan.bytes, "pin": at.pin.as_str() }),
            &link.latency,
            cpu_ns_per_op(link.cpu, link.latency.len()),
        );
        let blocks = link.block_p50s.clone();
        let (sent, echoed, same_buffer) = link.finish()?;
        done.series.push(Series {
            contender,
            blocks,
            measurement,
        });
        done.counts.push((contender, sent, echoed));
        done.channel_moved = done.channel_moved.or(same_buffer);
    }
    Ok(done)
}

/// One contender's ping-pong link and its measurements.
struct Link {
    contender: Contender,
    // Fields drop in order: a child peer is killed before our pipe ends close, so on an early
    // exit it dies quietly instead of reporting the EOF it would otherwise see.
    far: Far<u64>,
    pinger: Pinger,
    latency: LatencyRecorder,
    block: LatencyRecorder,
    block_p50s: Vec<f64>,
    cpu: Duration,
}

enum Pinger {
    Pipe(StreamPinger<PipeReader, PipeWriter>),
    Channel(ChannelPinger),
}

/// Starts the far side for `contender`: an echo child, an echo thread over pipes, or an echo
/// thread over channels.
fn start_link(contender: Contender, bytes: usize, cpu: Option<usize>) -> Result<Link> {
    let (pinger, far) = match contender {
        Contender::ProcessPipe | Contender::ThreadPipe => {
            let args = ["--bytes".to_owned(), bytes.to_string()];
            let (rx, tx, far) = start_pipe_peer(contender, "echo", &args, cpu, move |rx, tx| {
                pingpong::stream_echo(rx, tx, bytes)
            })?;
            (Pinger::Pipe(StreamPinger::new(rx, tx, bytes)), far)
        }
        Contender::ThreadChannel => {
            let (to_echo, echo_rx) = bounded(1);
            let (echo_tx, from_echo) = bounded(1);
            let far = Far::thread("echo", cpu, move || {
                pingpong::channel_echo(echo_rx, echo_tx)
            })?;
            let pinger = ChannelPinger::new(to_echo, from_echo, bytes);
            (Pinger::Channel(pinger), far)
        }
    };
    Ok(Link {
        contender,
        pinger,
        far,
        latency: LatencyRecorder::new(),
        block: LatencyRecorder::new(),
        block_p50s: Vec::new(),
        cpu: Duration::ZERO,
    })
}

impl Link {
    /// One round trip; a failure says what became of the far side.
    fn round_trip(&mut self, shutdown: &Shutdown) -> Result<()> {
        shutdown.check()?;
        let pinger: &mut dyn RoundTrip = match &mut self.pinger {
            Pinger::Pipe(p) => p,
            Pinger::Channel(p) => p,
        };
        pinger.round_trip().map_err(|err| self.far.broke(err))
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

    /// Ends the exchange; returns (round trips we made, messages the far side counted,
    /// whether channel buffers came back unmoved).
    fn finish(self) -> Result<(u64, u64, Option<bool>)> {
        let Link {
            pinger, mut far, ..
        } = self;
        match pinger {
            Pinger::Pipe(p) => {
                let sent = p.count();
                let echoed = p.finish().map_err(|e| far.broke(e))?;
                far.finish()?;
                Ok((sent, echoed, None))
            }
            Pinger::Channel(p) => {
                let (sent, same) = (p.count(), p.same_buffer);
                drop(p); // Hanging up ends the echo thread's loop.
                let echoed = far.finish()?.unwrap_or(0);
                Ok((sent, echoed, Some(same)))
            }
        }
    }
}
