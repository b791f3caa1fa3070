//! Step 2, round trips: a message to an echo and back, a child process over two queues vs a
//! thread over two bounded channels of the same depth, in alternating blocks.

use std::io::PipeWriter;
use std::os::fd::AsFd;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender, bounded};
use labkit::measure::cpu_ns_per_op;
use labkit::pin::pin_thread_to;
use labkit::report::placement_text;
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder, Measurement, Report};

use crate::child::{Child, back_size};
use crate::protocol::END;
use crate::queue;
use crate::{Blocks, Plan};

/// Step 2: round trips, processes over queues and threads over channels, alternating.
pub fn measure(report: &mut Report, plan: &Plan, shutdown: &'static Shutdown) -> Result<Blocks> {
    let mut echoes = Echoes::start(plan, shutdown)?;
    let pid = vec![echoes.child.pid()];
    let mut lat = [LatencyRecorder::new(), LatencyRecorder::new()];
    let mut block_p50 = [Vec::new(), Vec::new()];
    let mut cpu = [Duration::ZERO; 2];
    let (mut seq, mut intact) = (0u64, true);
    // Block 0 warms both sides up (a tenth of the round trips) and is not counted.
    for block in 0..=plan.blocks {
        let n = if block == 0 {
            plan.round_trips / 10
        } else {
            plan.round_trips / plan.blocks
        };
        for v in plan.running() {
            let watch: &[_] = if v == 0 { &pid } else { &[] };
            let cpu_before = CpuClock::now(watch)?;
            let mut this_block = LatencyRecorder::new();
            for _ in 0..n {
                shutdown.check()?;
                let start = Instant::now();
                intact &= if v == 0 {
                    echoes.through_queues(seq)?
                } else {
                    echoes.through_channels(seq)?
                };
                this_block.record(start.elapsed());
                seq += 1;
            }
            if block > 0 {
                cpu[v] += CpuClock::since(cpu_before, watch)?;
                lat[v].add(&this_block);
                block_p50[v].push(this_block.p50() as f64);
            }
        }
    }
    echoes.stop(shutdown)?;
    let blocks = crate::record(report, plan, block_p50, |variant, mechanism, v| {
        let per_op = cpu_ns_per_op(cpu[v], lat[v].len());
        Measurement::histogram(
            "round_trip",
            variant,
            mechanism,
            plan.config(),
            &lat[v],
            per_op,
        )
    });
    report.check(
        &format!(
            "every echoed message came back once, in order, intact ({})",
            placement_text(plan.pin.as_str())
        ),
        intact,
        format!("{seq} round trips, each compared byte for byte with what was sent"),
    );
    Ok(blocks)
}

/// The two echoes (a child process, a thread) and what keeps the parent's untimed waits safe.
struct Echoes {
    /// Dropped, it tells the watchdog that the exchange is over. (Fields drop in order: on an
    /// early return the watchdog stands down before the child is killed.)
    stop_watchdog: PipeWriter,
    watchdog: JoinHandle<()>,
    child: Child,
    to_thread: Sender<Box<[u8]>>,
    from_thread: Receiver<Box<[u8]>>,
    thread: JoinHandle<()>,
    /// The message sent and the one received, for the queues (a receive buffer must hold the
    /// queue's largest message); the one buffer that travels to the thread and back.
    sent: Vec<u8>,
    back: Vec<u8>,
    boxed: Option<Box<[u8]>>,
}

impl Echoes {
    fn start(plan: &Plan, shutdown: &'static Shutdown) -> Result<Echoes> {
        let child = Child::start("echo", plan, &[])?;
        let (to_thread, thread_in) = bounded::<Box<[u8]>>(plan.depth as usize);
        let (thread_out, from_thread) = bounded::<Box<[u8]>>(plan.depth as usize);
        let cpu = plan.cpus.peer;
        let thread = std::thread::Builder::new()
            .name("echo".into())
            .spawn(move || {
                pin_thread_to(cpu);
                for msg in thread_in {
                    if thread_out.send(msg).is_err() {
                        break;
                    }
                }
            })
            .context("spawn the echo thread")?;
        // The parent waits untimed, as C does (a timed wait arms a timer on every sleep). To
        // wake it if the child dies or a signal comes, a watchdog posts an empty message to
        // its queue.
        let exits = vec![child.exit_fd()?];
        let (stop, stop_watchdog) = std::io::pipe().context("pipe")?;
        let marker = child.from.try_clone().context("dup a queue descriptor")?;
        let watchdog = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                if labkit::child::watch_peers(stop.as_fd(), shutdown, exits) {
                    let _ = marker.send_untimed(END, 0);
                }
            })
            .context("spawn the watchdog thread")?;
        let bytes = plan.bytes as usize;
        Ok(Echoes {
            stop_watchdog,
            watchdog,
            child,
            to_thread,
            from_thread,
            thread,
            sent: vec![0u8; bytes],
            back: vec![0u8; back_size(plan) as usize],
            boxed: Some(vec![0u8; bytes].into_boxed_slice()),
        })
    }

    /// Message `seq` to the child and back; whether it came back intact.
    fn through_queues(&mut self, seq: u64) -> Result<bool> {
        let child = &self.child;
        queue::fill(&mut self.sent, seq);
        // One message in flight: the queue always has room, a send never waits.
        child
            .to
            .send_untimed(&self.sent, 0)
            .map_err(|e| child.broke(e))?;
        let (len, _) = child
            .from
            .receive_untimed(&mut self.back)
            .map_err(|e| child.broke(e))?;
        if len == 0 {
            return Err(child.broke(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the watchdog woke us: the child ended or a signal came",
            )));
        }
        Ok(len == self.sent.len() && self.back[..len] == self.sent[..])
    }

    /// Message `seq` to the echo thread and back; whether it came back intact.
    fn through_channels(&mut self, seq: u64) -> Result<bool> {
        let mut msg = self.boxed.take().expect("the buffer came back");
        queue::fill(&mut msg, seq);
        self.to_thread
            .send(msg)
            .context("the echo thread is gone")?;
        let msg = self.from_thread.recv().context("the echo thread is gone")?;
        let intact = queue::is_message(&msg, seq);
        self.boxed = Some(msg);
        Ok(intact)
    }

    /// Ends both echoes and the watchdog, and waits for each.
    fn stop(self, shutdown: &Shutdown) -> Result<()> {
        let Echoes {
            child,
            to_thread,
            thread,
            watchdog,
            stop_watchdog,
            ..
        } = self;
        let alive = || child.alive() && shutdown.check().is_ok();
        child.to.send(END, 0, &alive).map_err(|e| child.broke(e))?;
        child.finish()?;
        drop(stop_watchdog);
        watchdog
            .join()
            .map_err(|_| anyhow::anyhow!("the watchdog thread panicked"))?;
        drop(to_thread);
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the echo thread panicked"))?;
        Ok(())
    }
}
