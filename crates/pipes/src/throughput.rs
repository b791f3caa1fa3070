//! Step 2, throughput: each contender's streaming link is started, then timed one whole stream
//! per block, in blocks that alternate with the other contenders' blocks; the reader's receipt
//! (length, CRC-32, reads) is checked against what was sent.

use std::io::{PipeReader, PipeWriter};
use std::time::{Duration, Instant};

use crate::far::Far;
use anyhow::Result;
use crossbeam_channel::{Receiver, Sender, bounded};
use labkit::measure::{cpu_ns_per_op, mib_per_s};
use labkit::report::{format_bytes, placement_text};
use labkit::signals::Shutdown;
use labkit::{CpuClock, Measurement, Report};
use serde_json::json;

use crate::contender::{Contender, Series, start_pipe_peer};
use crate::stream::{self, CHUNK, Piece, Receipt};
use crate::{Placed, Plan};

/// Buffers the channel contender lends its reader: a few in flight, as a pipe holds 64 KiB.
const CHANNEL_BUFFERS: usize = 4;

/// What step 2 measured at one placement.
struct Streams {
    series: Vec<Series>,
    /// Per contender, how many reads (or chunks received) all its streams took.
    reads: Vec<(Contender, u64)>,
    /// Writes of at most [`CHUNK`] bytes per stream.
    writes_per_stream: u64,
    /// What went wrong, for people: a receipt that did not match, a stream count that is off.
    bad: Vec<String>,
}

/// Step 2 at one placement: every contender's streams, measured into `report` with the check
/// that every stream arrived whole; returns each contender's figures for the verdicts.
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
    let reads: Vec<String> = (done.reads.iter())
        .map(|(c, n)| format!("{n} reads ({})", c.label()))
        .collect();
    let detail = if done.bad.is_empty() {
        format!(
            "{} streams of {} per contender, length and CRC-32 matched at the far end; \
             {} writes of at most 64 KiB arrived as {} (a pipe keeps no write boundaries; a \
             channel hands over whole buffers)",
            plan.blocks,
            format_bytes(plan.total),
            done.writes_per_stream * plan.blocks,
            reads.join(", ")
        )
    } else {
        done.bad.join("; ")
    };
    let place = placement_text(at.pin.as_str());
    let name = format!("every stream arrived whole ({place})");
    report.check(&name, done.bad.is_empty(), detail);
    Ok(done.series)
}

/// Streams for every contender: `plan.blocks` streams of `plan.total` bytes each, alternating.
fn measure(
    contenders: &[Contender],
    plan: &Plan,
    at: Placed,
    shutdown: &Shutdown,
) -> Result<Streams> {
    let crc = stream::expected_crc(plan.total);
    let mut pipelines = contenders
        .iter()
        .map(|&c| start_pipeline(c, at.cpus.peer))
        .collect::<Result<Vec<_>>>()?;
    for _ in 0..plan.blocks {
        for p in &mut pipelines {
            p.run_block(plan.total, crc, shutdown)?;
        }
    }
    let writes_per_stream = plan.total.div_ceil(CHUNK as u64);
    let mut done = Streams {
        series: Vec::new(),
        reads: Vec::new(),
        writes_per_stream,
        bad: Vec::new(),
    };
    for mut p in pipelines {
        let c = p.contender;
        let measurement = Measurement::value(
            "throughput",
            c.variant(),
            c.mechanism(),
            json!({ "bytes": CHUNK, "pin": at.pin.as_str() }),
            "MiB/s",
            mib_per_s(plan.total * plan.blocks, p.elapsed),
            cpu_ns_per_op(p.cpu, writes_per_stream * plan.blocks),
        );
        done.series.push(Series {
            contender: c,
            blocks: std::mem::take(&mut p.block_mib_s),
            measurement,
        });
        done.reads.push((c, p.reads));
        done.bad.append(&mut p.bad);
        if let Some(served) = p.finish()? {
            if served != plan.blocks {
                let label = c.label();
                done.bad.push(format!(
                    "{label} served {served} streams of {}",
                    plan.blocks
                ));
            }
        }
    }
    Ok(done)
}

/// One contender's streaming link: what writes, and the far side that reads.
struct Pipeline {
    contender: Contender,
    // Fields drop in order: a child peer is killed before our pipe ends close, so on an early
    // exit it dies quietly instead of reporting the EOF it would otherwise see.
    far: Far<u64>,
    writer: StreamWriter,
    block_mib_s: Vec<f64>,
    elapsed: Duration,
    cpu: Duration,
    reads: u64,
    bad: Vec<String>,
}

enum StreamWriter {
    Pipe {
        tx: PipeWriter,
        rx: PipeReader,
        chunk: Vec<u8>,
    },
    Channel {
        tx: Sender<Piece>,
        pool: Receiver<Vec<u8>>,
        receipts: Receiver<Receipt>,
    },
}

/// Starts the far side for `contender`: a reading child, a reading thread over pipes, or a
/// reading thread over channels that hands each buffer back.
fn start_pipeline(contender: Contender, cpu: Option<usize>) -> Result<Pipeline> {
    let (writer, far) = match contender {
        Contender::ProcessPipe | Contender::ThreadPipe => {
            let (rx, tx, far) =
                start_pipe_peer(contender, "sink", &[], cpu, stream::serve_streams)?;
            let chunk = stream::new_chunk();
            (StreamWriter::Pipe { tx, rx, chunk }, far)
        }
        Contender::ThreadChannel => {
            let (tx, pieces) = bounded(CHANNEL_BUFFERS / 2);
            let (pool_tx, pool) = bounded(CHANNEL_BUFFERS);
            let (receipt_tx, receipts) = bounded(1);
            for _ in 0..CHANNEL_BUFFERS {
                pool_tx
                    .send(stream::new_chunk())
                    .expect("the pool has room for every buffer");
            }
            let far = Far::thread("sink", cpu, move || {
                Ok(stream::serve_streams_channel(pieces, pool_tx, receipt_tx))
            })?;
            (StreamWriter::Channel { tx, pool, receipts }, far)
        }
    };
    Ok(Pipeline {
        contender,
        writer,
        far,
        block_mib_s: Vec::new(),
        elapsed: Duration::ZERO,
        cpu: Duration::ZERO,
        reads: 0,
        bad: Vec::new(),
    })
}

impl Pipeline {
    /// Streams `total` bytes once, timed, and checks the reader's receipt against `crc`.
    fn run_block(&mut self, total: u64, crc: u32, shutdown: &Shutdown) -> Result<()> {
        shutdown.check()?;
        let pids = self.far.pids();
        let cpu_before = CpuClock::now(&pids)?;
        let keep_going = || shutdown.check().is_ok();
        let start = Instant::now();
        let sent = match &mut self.writer {
            StreamWriter::Pipe { tx, rx, chunk } => {
                stream::send_stream(tx, rx, total, chunk, keep_going)
            }
            StreamWriter::Channel { tx, pool, receipts } => {
                stream::send_stream_channel(tx, pool, receipts, total, keep_going)
            }
        };
        let elapsed = start.elapsed();
        let receipt = sent.map_err(|err| self.far.broke(err))?;
        self.cpu += CpuClock::since(cpu_before, &pids)?;
        self.elapsed += elapsed;
        self.reads += receipt.reads;
        self.block_mib_s.push(mib_per_s(total, elapsed));
        if (receipt.bytes, receipt.crc) != (total, crc) {
            self.bad.push(format!(
                "{}: {} bytes with CRC {:08x}, expected {total} with {crc:08x}",
                self.contender.label(),
                receipt.bytes,
                receipt.crc
            ));
        }
        Ok(())
    }

    /// Hangs up (EOF between streams ends the reader) and returns how many streams it served,
    /// where a thread can tell us.
    fn finish(self) -> Result<Option<u64>> {
        drop(self.writer);
        self.far.finish()
    }
}
