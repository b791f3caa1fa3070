//! Step 2: one message size, three contenders in alternating blocks ([`CONTENDERS`]): two
//! processes over two rings in a shared-memory object, two threads over the same ring code in
//! ordinary memory, two threads over channels. Round trips, then one-way streams; every message
//! is checked at the far end. The baselines of step 3 run in the same alternation.

use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender, bounded};
use labkit::child::{Peer, cpu_arg, fd_arg, this_binary};
use labkit::measure::{cpu_ns_per_op, mib_per_s};
use labkit::pin::{Placement, pin_thread_to};
use labkit::report::{format_bytes, placement_text};
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder, Measurement, Pin, Report, Variant};
use nix::unistd::Pid;
use serde_json::{Value, json};
use shm::ring::Local;
use shm::wait::{self, Mode as WaitMode};

use crate::baselines::{Baselines, atomic_ping_pong};
use crate::link::Link;
use crate::protocol::{Buffer, echo_channel, echo_loop, echo_mode};
use crate::region::{self, slots};
use crate::{MAX_STREAM_MESSAGES, RT_BYTES, Wait};

/// The contenders, in the order they run in each block: their variant and mechanism.
pub const CONTENDERS: [(Variant, &str); 3] = [
    (Variant::Process, "shm-ring"),
    (Variant::Thread, "ring"),
    (Variant::Thread, "channel"),
];

/// How step 2 runs at one placement.
#[derive(Clone)]
pub struct Plan {
    /// Which of [`CONTENDERS`] run (all, unless `--variant` picked one side).
    pub sides: [bool; 3],
    pub round_trips: u64,
    pub min_round_trips: u64,
    pub stream: u64,
    pub blocks: u64,
    /// The buffers of the `memcpy` through memory (see [`Baselines`]).
    pub memory_copy: usize,
    pub mode: WaitMode,
    pub wait: Wait,
    pub pin: Pin,
    pub placement: Placement,
}

impl Plan {
    /// Round trips at `bytes`: fewer for large messages (a 1 MiB round trip takes about a
    /// millisecond), no more than [`RT_BYTES`] each way, but never below the minimum.
    fn round_trips_of(&self, bytes: u64) -> u64 {
        self.round_trips
            .min(RT_BYTES / bytes)
            .max(self.min_round_trips)
    }

    /// Messages per stream block at `bytes`.
    fn messages_of(&self, bytes: u64) -> u64 {
        (self.stream / bytes).clamp(1, MAX_STREAM_MESSAGES)
    }
}

/// One size's figures at one placement.
pub struct Series {
    pub bytes: u64,
    pub pin: Pin,
    /// Per contender of [`CONTENDERS`], when its side ran.
    pub figures: [Option<Figures>; 3],
}

/// What one contender measured: the measurements written to the report (kept, for a claim to
/// name them) and their block figures (the pairs a verdict is drawn from).
pub struct Figures {
    pub round_trip: Measurement,
    pub throughput: Measurement,
    /// Each block's round-trip p50 (ns) and stream rate (MiB/s).
    pub rt_blocks: Vec<f64>,
    pub tp_blocks: Vec<f64>,
}

/// Step 2, for one size: round trips then streams, contenders alternating block by block; with
/// `atomic`, a block of the atomic ping-pong after each block of round trips, added to it; with
/// `baselines`, a block of each after each block of streams.
pub fn measure(
    report: &mut Report,
    plan: &Plan,
    bytes: u64,
    atomic: &mut Option<LatencyRecorder>,
    baselines: Option<&mut Baselines>,
    shutdown: &Shutdown,
) -> Result<Series> {
    // The process contender: a region in a shared-memory object, a child on the other side.
    // With `--variant thread`, no child: the region stays ours alone, unused.
    let fd = region::shm_object(region::len(bytes) as u64)?;
    let map = region::map(&fd, bytes)?;
    let peer = if plan.sides[0] {
        Some(RefCell::new(start_echo(&fd, bytes, plan)?))
    } else {
        None
    };
    drop(fd); // The child holds the object now; our mapping keeps it alive for us.
    let alive = || peer.as_ref().is_none_or(|p| !p.borrow_mut().died()) && shutdown.check().is_ok();
    // SAFETY: `map` is `region::len(bytes)` long, shared with the child only, and outlives the
    // rings (they go with `links`, before the child is reaped and `map` dropped: see below).
    let (p_out, p_in) = unsafe { region::rings(&map, bytes) };
    let sleepers = match peer {
        Some(_) => wait::sleepers(&p_out, &p_in).to_vec(),
        None => Vec::new(),
    };

    // The thread contenders: the same rings in ordinary memory, and channels.
    let (l_out, l_in) = (
        Local::new(slots(bytes), bytes as usize),
        Local::new(slots(bytes), bytes as usize),
    );
    let (to_echo, echo_rx) = bounded(slots(bytes) as usize);
    let (echo_tx, from_echo) = bounded(slots(bytes) as usize);
    let always = || true;
    let mut links = [
        Link::rings(p_out, p_in, plan.mode, peer.as_ref(), &alive),
        Link::rings(l_out.ring(), l_in.ring(), plan.mode, None, &always),
        Link::channels(to_echo, from_echo, bytes as usize, slots(bytes)),
    ];

    // Our sleeps on the child's rings have no timeout: a nudger wakes them to look at it.
    let echoes = Echoes {
        rings: (&l_out, &l_in),
        channels: (echo_rx, echo_tx),
    };
    let tallies = wait::with_nudges(&sleepers, || -> Result<[Tally; 3]> {
        let tallies = with_echo_threads(echoes, &mut links, plan, |links| {
            alternate(plan, bytes, links, atomic, baselines, shutdown)
        })?;
        // Stop the child, then wait for it; only then may the mapping go.
        if peer.is_some() {
            links[0].stop()?;
        }
        Ok(tallies)
    })
    .context("spawn the thread that nudges our sleeps")??;
    drop(links);
    if let Some(peer) = peer {
        peer.into_inner().finish()?;
    }
    drop(map);
    Ok(record(report, plan, bytes, tallies))
}

/// The thread contenders' far ends: a ring pair's storage, and the channels' ends.
struct Echoes<'a> {
    rings: (&'a Local, &'a Local),
    channels: (Receiver<Buffer>, Sender<Buffer>),
}

/// Runs `run` with the thread echoes serving `links[1]` and `links[2]`, then stops them,
/// whatever happened.
fn with_echo_threads(
    echoes: Echoes<'_>,
    links: &mut [Link<'_>; 3],
    plan: &Plan,
    run: impl FnOnce(&mut [Link<'_>; 3]) -> Result<[Tally; 3]>,
) -> Result<[Tally; 3]> {
    let (cpu, mode) = (plan.placement.peer, plan.mode);
    let ((echo_in, echo_out), (echo_rx, echo_tx)) = (echoes.rings, echoes.channels);
    std::thread::scope(|s| {
        // One echo for the ring and one for the channels, each with its own views (a ring's
        // side keeps its indices to itself). A STOP message, or an empty buffer, ends them.
        let started = std::thread::Builder::new()
            .name("ring-echo".into())
            .spawn_scoped(s, move || {
                pin_thread_to(cpu);
                echo_loop(&echo_in.ring(), &echo_out.ring(), echo_mode(mode), &|| true)
            })
            .context("spawn the ring echo thread")
            .and_then(|_| {
                std::thread::Builder::new()
                    .name("channel-echo".into())
                    .spawn_scoped(s, move || {
                        pin_thread_to(cpu);
                        echo_channel(echo_rx, echo_tx);
                    })
                    .context("spawn the channel echo thread")
            });
        let result = started.and_then(|_| run(links));
        // Stop the thread echoes whatever happened (one that did not start is not there to
        // answer: the stop only fills a slot, or finds the channel closed).
        let _ = links[1].stop();
        let _ = links[2].stop();
        result
    })
}

/// Starts the echo child for a region of `bytes`-byte messages held by the object `fd`.
fn start_echo(fd: &OwnedFd, bytes: u64, plan: &Plan) -> Result<Peer> {
    // The echo side is this binary again, in the role `echo`. It inherits one descriptor, the
    // shared-memory object's, at the same number, named by `--fd` (it takes it back with
    // `args.role.take_fds()` and maps it: the object has no name any more). `--bytes` tells it
    // the layout of the region; `--wait` and `--pin` make it wait as we do (see `wait_mode`);
    // `--cpu` pins it where the placement puts the far side. `Peer::start` has it die with us
    // and ignore Ctrl-C, keeps exactly `fd` open across exec, and kills and reaps it if the
    // `Peer` is dropped before it finished.
    let mut command = this_binary("echo")?; // <this binary> --role echo
    command.args(fd_arg(fd)).args(cpu_arg(plan.placement.peer));
    command.args(["--bytes", &bytes.to_string()]);
    command.args(["--wait", plan.wait.name(), "--pin", plan.pin.as_str()]);
    Peer::start(command, &[fd.as_fd()])
}

/// The alternation at one size: block 0 warms every contender up (a tenth of the round trips,
/// not recorded; no stream), then `plan.blocks` blocks of round trips and of streams, one
/// contender after the other, with the baselines between them.
fn alternate(
    plan: &Plan,
    bytes: u64,
    links: &mut [Link<'_>; 3],
    atomic: &mut Option<LatencyRecorder>,
    mut baselines: Option<&mut Baselines>,
    shutdown: &Shutdown,
) -> Result<[Tally; 3]> {
    let mut tallies = links.each_ref().map(|link| Tally::new(link.watch()));
    let (round_trips, messages) = (plan.round_trips_of(bytes), plan.messages_of(bytes));
    let sides = || (0..3).filter(|&c| plan.sides[c]);
    for block in 0..=plan.blocks {
        let n = if block == 0 {
            (round_trips / 10).max(1)
        } else {
            (round_trips / plan.blocks).max(1)
        };
        for c in sides() {
            tallies[c].round_trips(&mut links[c], n, block > 0, shutdown)?;
        }
        // The floor under any spinning hand-off, in the same alternation: the host may move
        // the vCPUs during a run, and a ratio of figures from different moments would mislead.
        if let Some(atomic) = atomic.as_mut() {
            let spun = atomic_ping_pong(plan.round_trips / plan.blocks, plan.placement.peer)?;
            if block > 0 {
                atomic.add(&spun);
            }
        }
        if block == 0 {
            continue;
        }
        // Streams, one way: the far side checks each message and answers the end of the
        // stream with a receipt.
        for c in sides() {
            tallies[c].stream(&mut links[c], messages, bytes)?;
        }
        if let Some(baselines) = baselines.as_deref_mut() {
            shutdown.check()?;
            // A spinning echo spins on for up to PATIENCE after its last message: let it fall
            // asleep, so that the baselines have both CPUs to themselves.
            std::thread::sleep(2 * wait::PATIENCE);
            baselines.block(plan.blocks)?;
        }
    }
    Ok(tallies)
}

/// What one contender has measured at one size so far.
struct Tally {
    /// The processes besides this one whose CPU time counts (the child, for the process side).
    watch: Vec<Pid>,
    /// The next message's sequence number.
    seq: u64,
    /// Messages that did not arrive once, in order, intact.
    wrong: u64,
    rt: LatencyRecorder,
    rt_cpu: Duration,
    rt_blocks: Vec<f64>,
    tp_time: Duration,
    tp_cpu: Duration,
    tp_blocks: Vec<f64>,
}

impl Tally {
    fn new(watch: Vec<Pid>) -> Tally {
        Tally {
            watch,
            seq: 0,
            wrong: 0,
            rt: LatencyRecorder::new(),
            rt_cpu: Duration::ZERO,
            rt_blocks: Vec::new(),
            tp_time: Duration::ZERO,
            tp_cpu: Duration::ZERO,
            tp_blocks: Vec::new(),
        }
    }

    /// A block of `n` round trips over `link`, recorded unless it is the warm-up.
    fn round_trips(
        &mut self,
        link: &mut Link<'_>,
        n: u64,
        record: bool,
        shutdown: &Shutdown,
    ) -> Result<()> {
        let cpu_before = CpuClock::now(&self.watch)?;
        let mut this = LatencyRecorder::new();
        for _ in 0..n {
            shutdown.check()?;
            let start = Instant::now();
            link.round_trip(self.seq)?;
            let took = start.elapsed();
            if record {
                this.record(took);
            }
            self.wrong += u64::from(!link.came_back(self.seq)?);
            self.seq += 1;
        }
        if record {
            self.rt_cpu += CpuClock::since(cpu_before, &self.watch)?;
            self.rt.add(&this);
            self.rt_blocks.push(this.p50() as f64);
        }
        Ok(())
    }

    /// A block of one stream of `messages` messages of `bytes` over `link`.
    fn stream(&mut self, link: &mut Link<'_>, messages: u64, bytes: u64) -> Result<()> {
        let cpu_before = CpuClock::now(&self.watch)?;
        let start = Instant::now();
        self.wrong += link.stream(self.seq, messages)?;
        self.seq += messages;
        let took = start.elapsed();
        self.tp_time += took;
        self.tp_cpu += CpuClock::since(cpu_before, &self.watch)?;
        self.tp_blocks.push(mib_per_s(messages * bytes, took));
        Ok(())
    }

    /// The contender's measurements: a histogram of its round trips, the rate of its streams
    /// (`moved` messages of `bytes` in all).
    fn figures(
        self,
        (variant, mechanism): (Variant, &str),
        config: &Value,
        moved: u64,
        bytes: u64,
    ) -> Figures {
        Figures {
            round_trip: Measurement::histogram(
                "round_trip",
                variant,
                mechanism,
                config.clone(),
                &self.rt,
                cpu_ns_per_op(self.rt_cpu, self.rt.len()),
            ),
            throughput: Measurement::value(
                "throughput",
                variant,
                mechanism,
                config.clone(),
                "MiB/s",
                mib_per_s(moved * bytes, self.tp_time),
                cpu_ns_per_op(self.tp_cpu, moved),
            ),
            rt_blocks: self.rt_blocks,
            tp_blocks: self.tp_blocks,
        }
    }
}

/// Writes one size's measurements and its check into `report`; returns its figures.
fn record(report: &mut Report, plan: &Plan, bytes: u64, tallies: [Tally; 3]) -> Series {
    let config = json!({ "bytes": bytes, "wait": plan.wait.name(), "pin": plan.pin.as_str() });
    let moved = plan.messages_of(bytes) * plan.blocks;
    let wrong: u64 = tallies.iter().map(|t| t.wrong).sum();
    let mut figures = [None, None, None];
    for (c, tally) in tallies
        .into_iter()
        .enumerate()
        .filter(|&(c, _)| plan.sides[c])
    {
        let f = tally.figures(CONTENDERS[c], &config, moved, bytes);
        report.measure(f.round_trip.clone());
        report.measure(f.throughput.clone());
        figures[c] = Some(f);
    }
    report.check(
        &format!(
            "every {} message arrived once, in order, intact ({})",
            format_bytes(bytes),
            placement_text(plan.pin.as_str())
        ),
        wrong == 0,
        format!("round trips and streams over every contender, sequence number and CRC-32 of every message checked (round trips when they come back, streams at the far end, which sends a receipt): {wrong} wrong"),
    );
    Series {
        bytes,
        pin: plan.pin,
        figures,
    }
}
