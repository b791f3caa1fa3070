//! One contender: our end of a hand-off (a pipe pair or a futex word), its far side (a child
//! process or a thread), its timed blocks, and its figures once stopped.

use std::io::{PipeReader, PipeWriter, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::child::{Peer, explain_break};
use labkit::measure::cpu_ns_per_op;
use labkit::pin::{PinGuard, Placement, pin_current_thread};
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder, Measurement, Pin, Report, Variant};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;
use serde_json::json;

use crate::handoff::{self, SharedWord};
use crate::tasks::TaskHandOff;

/// What carries the hand-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Pipe,
    Futex,
    /// Two async tasks on one runtime thread, each waking the other with a `tokio::sync::Notify`.
    Notify,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Pipe => "pipe",
            Mechanism::Futex => "futex",
            Mechanism::Notify => "tokio-notify",
        }
    }
}

/// A contender of either kind: a hand-off through the kernel (to a process or a thread), or
/// two async tasks on one thread (`tasks.rs`).
pub enum Any {
    Kernel(Contender),
    Tasks(TaskHandOff),
}

impl Any {
    pub fn warm_up(&mut self, n: u32, shutdown: &Shutdown) -> Result<()> {
        match self {
            Any::Kernel(c) => c.warm_up(n, shutdown),
            Any::Tasks(t) => t.warm_up(n, shutdown),
        }
    }

    pub fn run_block(&mut self, n: u64, shutdown: &Shutdown) -> Result<()> {
        match self {
            Any::Kernel(c) => c.run_block(n, shutdown),
            Any::Tasks(t) => t.run_block(n, shutdown),
        }
    }

    pub fn finish(self, report: &mut Report) -> Result<Finished> {
        match self {
            Any::Kernel(c) => c.finish(report),
            Any::Tasks(t) => t.finish(report),
        }
    }
}

/// What a far side reports once it has stopped: the round trips it served, and its own
/// voluntary and involuntary context switches over its whole life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    pub served: u64,
    pub voluntary: u64,
    pub involuntary: u64,
}

impl Tally {
    /// `served` round trips, and the calling thread's switches since `before`.
    pub fn since(served: u32, before: (u64, u64)) -> std::io::Result<Tally> {
        let after = handoff::switches()?;
        Ok(Tally {
            served: u64::from(served),
            voluntary: after.0 - before.0,
            involuntary: after.1 - before.1,
        })
    }

    /// The 24 bytes a child writes on its report pipe.
    pub fn to_bytes(self) -> [u8; 24] {
        let mut out = [0u8; 24];
        for (i, v) in [self.served, self.voluntary, self.involuntary]
            .iter()
            .enumerate()
        {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    fn from_bytes(b: [u8; 24]) -> Tally {
        let at = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Tally {
            served: at(0),
            voluntary: at(1),
            involuntary: at(2),
        }
    }
}

/// The far side: a child process (with the pipe it reports on, whose EOF is its death) or a
/// thread. Both report their [`Tally`].
enum Far {
    Process { peer: Peer, report: PipeReader },
    Thread(JoinHandle<std::io::Result<Tally>>),
}

impl Far {
    /// The far side as a child in `role`, on `cpu` if given: it inherits `fds`, then the write
    /// end of a pipe on which it reports its tally when it stops.
    fn process(role: &str, fds: &[BorrowedFd<'_>], cpu: Option<usize>) -> Result<Far> {
        let (report, report_tx) = std::io::pipe().context("pipe")?;
        let mut inherit = fds.to_vec();
        inherit.push(report_tx.as_fd());
        let peer = crate::child::start(role, &inherit, cpu)?;
        // The child has its copy of `report_tx`; ours, dropped here, would hide its death.
        Ok(Far::Process { peer, report })
    }

    /// The far side as a thread named `pong`, pinned to `cpu` if given, running `work`.
    fn thread(
        cpu: Option<usize>,
        work: impl FnOnce() -> std::io::Result<Tally> + Send + 'static,
    ) -> Result<Far> {
        let handle = std::thread::Builder::new()
            .name("pong".to_owned())
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin_current_thread(cpu)?;
                }
                work()
            })
            .context("spawn the pong thread")?;
        Ok(Far::Thread(handle))
    }

    fn pids(&self) -> Vec<Pid> {
        match self {
            Far::Process { peer, .. } => vec![peer.pid()],
            Far::Thread(_) => Vec::new(),
        }
    }

    /// Whether the far side is still there (checked only when a futex wait is long).
    fn alive(&self) -> bool {
        match self {
            Far::Process { report, .. } => {
                let mut fds = [PollFd::new(report.as_fd(), PollFlags::empty())];
                // POLLHUP is always reported: every write end is closed, so the child is gone.
                !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
            }
            Far::Thread(h) => !h.is_finished(),
        }
    }

    fn broke(&mut self, err: std::io::Error) -> anyhow::Error {
        match self {
            Far::Process { peer, .. } => explain_break(std::slice::from_mut(peer), err),
            Far::Thread(_) => {
                explain_break(&mut [], err).context("the hand-off with the thread broke")
            }
        }
    }

    /// The far side's own tally, once it has stopped.
    fn finish(self) -> Result<Tally> {
        match self {
            Far::Process {
                mut peer,
                mut report,
            } => {
                let mut bytes = [0u8; 24];
                // EOF here means the child died before it could report: say how it died.
                report
                    .read_exact(&mut bytes)
                    .map_err(|e| explain_break(std::slice::from_mut(&mut peer), e))
                    .context("read the child's tally")?;
                peer.finish()?;
                Ok(Tally::from_bytes(bytes))
            }
            Far::Thread(h) => match h.join() {
                Ok(r) => r.context("the far thread failed"),
                Err(_) => bail!("the far thread panicked"),
            },
        }
    }
}

/// Our end of the hand-off. (`far` first: fields drop in order, so a child is killed before
/// our ends close, and ends quietly.)
pub struct Contender {
    variant: Variant,
    mechanism: Mechanism,
    pin: Pin,
    placement: Placement,
    far: Far,
    ends: Ends,
    next: u32,
    timing: Timing,
}

/// A contender's timed blocks as they add up: every round trip, the block medians the verdict
/// pairs, the CPU time (ours and the far side's), and our thread's voluntary and involuntary
/// switches.
#[derive(Default)]
pub struct Timing {
    pub latency: LatencyRecorder,
    block: LatencyRecorder,
    pub block_p50s: Vec<f64>,
    pub cpu: Duration,
    pub switches: [u64; 2],
}

impl Timing {
    /// One timed block: `run` records each round trip into the block it is given; the CPU
    /// time of this process and of `pids`, and our thread's switches, are added up around it.
    pub fn block(
        &mut self,
        pids: &[Pid],
        run: impl FnOnce(&mut LatencyRecorder) -> Result<()>,
    ) -> Result<()> {
        let cpu_before = CpuClock::now(pids)?;
        let before = handoff::switches().context("getrusage(RUSAGE_THREAD)")?;
        self.block.reset();
        run(&mut self.block)?;
        let after = handoff::switches().context("getrusage(RUSAGE_THREAD)")?;
        self.switches[0] += after.0 - before.0;
        self.switches[1] += after.1 - before.1;
        self.cpu += CpuClock::since(cpu_before, pids)?;
        self.latency.add(&self.block);
        self.block_p50s.push(self.block.p50() as f64);
        Ok(())
    }
}

enum Ends {
    Pipe { tx: PipeWriter, rx: PipeReader },
    Futex { word: SharedWord },
}

/// A contender's figures after it stopped.
pub struct Finished {
    pub label: String,
    pub variant: Variant,
    pub mechanism: Mechanism,
    pub pin: Pin,
    pub measurement: Measurement,
    pub block_p50s: Vec<f64>,
    pub timed: u64,
    pub sent: u64,
    /// Our thread's voluntary and involuntary switches over the timed blocks.
    pub ours: [u64; 2],
    /// The far side's round trips served and its switches (lifetime).
    pub theirs: Tally,
}

impl Contender {
    /// Sets up one hand-off over `mechanism`, its far side a `variant` on `placement.peer`,
    /// waiting for the first round trip.
    pub fn start(
        variant: Variant,
        mechanism: Mechanism,
        pin: Pin,
        placement: Placement,
    ) -> Result<Contender> {
        let cpu = placement.peer;
        let process = variant == Variant::Process;
        let (ends, far) = match mechanism {
            Mechanism::Pipe => {
                let (their_rx, tx) = std::io::pipe().context("pipe")?;
                let (rx, their_tx) = std::io::pipe().context("pipe")?;
                let far = if process {
                    let fds = [their_rx.as_fd(), their_tx.as_fd()];
                    let far = Far::process("pipe-pong", &fds, cpu)?;
                    drop((their_rx, their_tx)); // The child has them; ours would hide EOF.
                    far
                } else {
                    Far::thread(cpu, move || {
                        let before = handoff::switches()?;
                        let served = handoff::pipe_pong(their_rx, their_tx)?;
                        Tally::since(served, before)
                    })?
                };
                (Ends::Pipe { tx, rx }, far)
            }
            Mechanism::Futex => {
                let memfd: OwnedFd = handoff::memfd().context("memfd_create")?;
                let word = SharedWord::map(&memfd).context("mmap the shared page")?;
                let far = if process {
                    Far::process("futex-pong", &[memfd.as_fd()], cpu)?
                } else {
                    let theirs = SharedWord::map(&memfd).context("mmap the shared page")?;
                    Far::thread(cpu, move || {
                        let before = handoff::switches()?;
                        // Our pinging side is in this process: it is alive while this thread runs.
                        let served = handoff::futex_pong(theirs.word(), &|| true)?;
                        Tally::since(served, before)
                    })?
                };
                (Ends::Futex { word }, far)
            }
            Mechanism::Notify => bail!("two tasks hand off in a TaskHandOff (tasks.rs)"),
        };
        Ok(Contender {
            variant,
            mechanism,
            pin,
            placement,
            far,
            ends,
            next: 0,
            timing: Timing::default(),
        })
    }

    fn label(&self) -> String {
        format!(
            "{}/{} --pin {}",
            self.variant.as_str(),
            self.mechanism.as_str(),
            self.pin.as_str()
        )
    }

    /// `n` untimed round trips on this contender's CPU (the warm-up).
    pub fn warm_up(&mut self, n: u32, shutdown: &Shutdown) -> Result<()> {
        let _pin = PinGuard::pin(self.placement.main).context("sched_setaffinity (main thread)")?;
        for _ in 0..n {
            shutdown.check()?;
            self.round_trip()?;
        }
        Ok(())
    }

    fn round_trip(&mut self) -> Result<()> {
        let i = self.next;
        let far = &self.far;
        let done = match &mut self.ends {
            Ends::Pipe { tx, rx } => handoff::pipe_round_trip(tx, rx, i),
            Ends::Futex { word } => handoff::futex_round_trip(word.word(), i, &|| far.alive()),
        };
        done.map_err(|e| self.far.broke(e))?;
        self.next += 1;
        Ok(())
    }

    /// `n` timed round trips on this contender's CPU; the block median goes to the verdict.
    pub fn run_block(&mut self, n: u64, shutdown: &Shutdown) -> Result<()> {
        let _pin = PinGuard::pin(self.placement.main).context("sched_setaffinity (main thread)")?;
        let pids = self.far.pids();
        let mut timing = std::mem::take(&mut self.timing);
        let timed = timing.block(&pids, |block| {
            for _ in 0..n {
                shutdown.check()?;
                let start = Instant::now();
                self.round_trip()?;
                block.record(start.elapsed());
            }
            Ok(())
        });
        self.timing = timing;
        timed
    }

    /// Stops the far side, records the measurements, and returns what the checks need.
    pub fn finish(mut self, report: &mut Report) -> Result<Finished> {
        let label = self.label();
        match &mut self.ends {
            Ends::Pipe { .. } => {}
            Ends::Futex { word } => handoff::futex_stop(word.word()).context("FUTEX_WAKE")?,
        }
        let Contender {
            variant,
            mechanism,
            pin,
            far,
            ends,
            next,
            timing,
            ..
        } = self;
        drop(ends); // A pipe's far side stops at EOF.
        let theirs = far.finish()?;
        let timed = timing.latency.len();
        // Half a round trip: on one CPU, one context switch; on two, one cross-CPU wake-up.
        let half = if pin == Pin::Same {
            "context_switch"
        } else {
            "wake_up"
        };
        let config = json!({ "pin": pin.as_str() });
        let m = record(report, (variant, mechanism), config, &timing, half);
        Ok(Finished {
            label,
            variant,
            mechanism,
            pin,
            measurement: m,
            block_p50s: timing.block_p50s,
            timed,
            sent: u64::from(next),
            ours: timing.switches,
            theirs,
        })
    }
}

/// Writes a contender's round trips into `report`, with `half` (the name of what half a round
/// trip is: a context switch, a wake-up, a hand-off) beside them; returns the round trips'
/// measurement.
pub fn record(
    report: &mut Report,
    (variant, mechanism): (Variant, Mechanism),
    config: serde_json::Value,
    timing: &Timing,
    half: &str,
) -> Measurement {
    let latency = &timing.latency;
    let m = Measurement::histogram(
        "round_trip",
        variant,
        mechanism.as_str(),
        config.clone(),
        latency,
        cpu_ns_per_op(timing.cpu, latency.len()),
    );
    report.measure(m.clone());
    let per_half = latency.p50() as f64 / 2.0;
    let value = Measurement::value(
        half,
        variant,
        mechanism.as_str(),
        config,
        "ns",
        per_half,
        None,
    );
    report.measure(value);
    m
}
