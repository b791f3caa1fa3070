//! Step 3, streams: `--messages` messages one way, every one checked (sequence and payload) by
//! the receiver and the stream's CRC-32 compared at the end: to a child process over a queue,
//! or to this thread from a producer thread over a bounded channel, in alternating blocks.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::bounded;
use labkit::measure::{cpu_ns_per_op, mib_per_s};
use labkit::pin::pin_thread_to;
use labkit::report::placement_text;
use labkit::signals::Shutdown;
use labkit::{CpuClock, Measurement, Report};

use crate::child::{Child, back_size};
use crate::protocol::{self, END, Receipt, STOP};
use crate::queue;
use crate::{Blocks, CONTENDERS, Plan};

/// Step 3: one-way streams, every message checked at the far end, alternating.
pub fn measure(report: &mut Report, plan: &Plan, shutdown: &Shutdown) -> Result<Blocks> {
    let sink = Child::start("sink", plan, &[])?;
    let alive = || sink.alive() && shutdown.check().is_ok();
    let mut rates = [Vec::new(), Vec::new()];
    let mut cpu = [Duration::ZERO; 2];
    let mut elapsed = [Duration::ZERO; 2];
    let mut bad = Vec::new();
    let pid = vec![sink.pid()];
    let mut msg = vec![0u8; plan.bytes as usize];
    for _ in 0..plan.blocks {
        for v in plan.running() {
            shutdown.check()?;
            let watch: &[_] = if v == 0 { &pid } else { &[] };
            let cpu_before = CpuClock::now(watch)?;
            let start = Instant::now();
            let (receipt, expected) = if v == 0 {
                stream_to_child(&sink, plan, &mut msg, shutdown)?
            } else {
                stream_threads(
                    plan.messages,
                    plan.bytes as usize,
                    plan.depth as usize,
                    plan.cpus.peer,
                    shutdown,
                )?
            };
            let took = start.elapsed();
            elapsed[v] += took;
            cpu[v] += CpuClock::since(cpu_before, watch)?;
            rates[v].push(mib_per_s(plan.messages * plan.bytes, took));
            if (receipt.count, receipt.crc, receipt.wrong) != (plan.messages, expected, 0) {
                bad.push(format!("{}: {receipt:?}", CONTENDERS[v].1));
            }
        }
    }
    sink.to.send(STOP, 0, &alive).map_err(|e| sink.broke(e))?;
    sink.finish()?;
    let total = plan.messages * plan.blocks;
    let blocks = crate::record(report, plan, rates, |variant, mechanism, v| {
        let rate = mib_per_s(total * plan.bytes, elapsed[v]);
        let per_op = cpu_ns_per_op(cpu[v], total);
        Measurement::value(
            "throughput",
            variant,
            mechanism,
            plan.config(),
            "MiB/s",
            rate,
            per_op,
        )
    });
    report.check(
        &format!(
            "every streamed message arrived once, in order, intact ({})",
            placement_text(plan.pin.as_str())
        ),
        bad.is_empty(),
        if bad.is_empty() {
            format!("{} streams of {} messages per variant; sequence and payload checked per message, CRC-32 per stream", plan.blocks, plan.messages)
        } else {
            bad.join("; ")
        },
    );
    Ok(blocks)
}

/// One stream to the sink child, each message built in `msg`; returns the sink's receipt and
/// our own checksum, which the sink's must match.
fn stream_to_child(
    sink: &Child,
    plan: &Plan,
    msg: &mut [u8],
    shutdown: &Shutdown,
) -> Result<(Receipt, u32)> {
    let alive = || sink.alive() && shutdown.check().is_ok();
    let mut crc = crc32fast::Hasher::new();
    for seq in 0..plan.messages {
        shutdown.check()?;
        queue::fill(msg, seq);
        crc.update(msg);
        sink.to.send(msg, 0, &alive).map_err(|e| sink.broke(e))?;
    }
    sink.to.send(END, 0, &alive).map_err(|e| sink.broke(e))?;
    let mut r = vec![0u8; back_size(plan) as usize];
    let (n, _) = sink
        .from
        .receive(&mut r, &alive)
        .map_err(|e| sink.broke(e))?;
    let receipt = Receipt::decode(r[..n].try_into().context("a receipt of the wrong size")?);
    Ok((receipt, crc.finalize()))
}

/// The thread stream: a producer thread, this thread receiving and checking.
fn stream_threads(
    messages: u64,
    bytes: usize,
    depth: usize,
    cpu: Option<usize>,
    shutdown: &Shutdown,
) -> Result<(Receipt, u32)> {
    let (tx, rx) = bounded::<Box<[u8]>>(depth);
    // Buffers go back to the producer to be reused: no allocation per message.
    let (pool_tx, pool) = bounded::<Box<[u8]>>(depth + 2);
    for _ in 0..depth + 2 {
        pool_tx
            .send(vec![0u8; bytes].into_boxed_slice())
            .expect("the pool has room");
    }
    let producer = std::thread::Builder::new()
        .name("producer".into())
        .spawn(move || {
            pin_thread_to(cpu);
            let mut crc = crc32fast::Hasher::new();
            for seq in 0..messages {
                let Ok(mut msg) = pool.recv() else { break };
                queue::fill(&mut msg, seq);
                crc.update(&msg);
                if tx.send(msg).is_err() {
                    break;
                }
            }
            crc.finalize()
        })
        .context("spawn the producer thread")?;
    let mut r = Receipt::default();
    let mut crc = crc32fast::Hasher::new();
    for msg in rx.iter() {
        if r.count.is_multiple_of(4096) && shutdown.check().is_err() {
            break; // Dropping `rx` ends the producer; the caller sees the interruption.
        }
        protocol::tally(&mut r, &mut crc, &msg);
        let _ = pool_tx.send(msg);
    }
    drop(rx);
    let sent = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))?;
    shutdown.check()?;
    r.crc = crc.finalize();
    Ok((r, sent))
}
