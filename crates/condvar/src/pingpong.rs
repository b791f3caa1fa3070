//! Step 1's measuring loop: the main thread pings two pong sides in alternating blocks, the
//! pong child through the process-shared [`Turn`] in a shared page, and a pong thread through
//! a [`ThreadTurn`]; every round trip is timed, and every wait's spurious wake-ups counted.

use std::cell::RefCell;
use std::io::Read;
use std::time::{Duration, Instant};

use crate::shared::SharedMemory;
use anyhow::{Context, Result, anyhow, ensure};
use labkit::child::{Peer, explain_break};
use labkit::measure::cpu_ns_per_op;
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder, Measurement, Variant};
use serde_json::json;

use crate::child::{self, Tally};
use crate::local::ThreadTurn;
use crate::pshared::{STOP, Turn, Waits};

/// The two sides, in the order their blocks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Process,
    Thread,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Process, Side::Thread];

    pub fn variant(self) -> Variant {
        match self {
            Side::Process => Variant::Process,
            Side::Thread => Variant::Thread,
        }
    }

    fn mechanism(self) -> &'static str {
        match self {
            Side::Process => "pthread-cond-pshared",
            Side::Thread => "std-condvar",
        }
    }
}

/// What one side measured.
pub struct Figures {
    pub side: Side,
    /// The median round trip, in ns.
    pub p50_ns: u64,
    /// The round trips, and the spurious wake-ups of both ends, as written to the Report.
    pub round_trip: Measurement,
    pub spurious_wakeups: Measurement,
}

/// What step 1 saw.
pub struct PingPong {
    /// Turns each way, warm-up included.
    pub sent: u64,
    /// Turns the pong child answered, and how many it should have (none when only the thread
    /// side ran).
    pub served: u64,
    pub expected: u64,
    /// One per side that ran.
    pub figures: Vec<Figures>,
}

impl PingPong {
    pub fn arrived(&self) -> bool {
        self.served == self.expected
    }

    /// The median round trip of `side`, in ns, if it ran.
    pub fn p50_ns(&self, side: Side) -> Option<u64> {
        let found = self.figures.iter().find(|f| f.side == side);
        found.map(|f| f.p50_ns)
    }
}

/// The ping-pong: a warm-up (a tenth of `messages`, untimed), then `blocks` timed blocks of
/// `messages / blocks` turns, each side of `sides` in turn.
pub fn run(sides: &[Side], messages: u64, blocks: u64, shutdown: &Shutdown) -> Result<PingPong> {
    let memory = SharedMemory::create(std::mem::size_of::<Turn>()).context("shared memory")?;
    let turn: *mut Turn = memory.cast();
    // SAFETY: the mapping is fresh, large enough and aligned (checked by `cast`) and unshared
    // until the child starts; the `Turn` is initialised in place and never moved.
    let turn: &Turn = unsafe {
        Turn::init(turn).context("initialise the process-shared condvar")?;
        &*turn
    };
    let (peer, mut tally_rx) = child::start(&memory)?;
    let peer = RefCell::new(peer);
    let local = ThreadTurn::new();
    let mut ping = Pinger {
        turn,
        local: &local,
        peer: &peer,
        shutdown,
        waits: [Waits::default(); 2],
        latency: [LatencyRecorder::new(), LatencyRecorder::new()],
        cpu: [Duration::ZERO; 2],
    };
    let result = with_pong_thread(&mut ping, sides, messages, blocks);
    // Stop the child whatever happened (a dead child simply does not read it).
    let _ = turn.set(STOP);
    let (sent, thread_waits) = result?;
    let Pinger {
        waits,
        latency,
        cpu,
        ..
    } = ping;
    let mut bytes = [0u8; Tally::LEN];
    tally_rx
        .read_exact(&mut bytes)
        .map_err(|e| peer.borrow_mut().death(e))?;
    peer.into_inner().finish()?;
    let tally = Tally::decode(&bytes);
    let figures = sides.iter().map(|&side| {
        let i = side as usize;
        let theirs = match side {
            Side::Process => tally.waits,
            Side::Thread => thread_waits,
        };
        let spurious = waits[i].spurious + theirs.spurious;
        Figures::new(side, &latency[i], cpu[i], spurious, sent)
    });
    Ok(PingPong {
        sent,
        served: tally.served,
        // The child answers only when the process side ran.
        expected: if sides.contains(&Side::Process) {
            sent
        } else {
            0
        },
        figures: figures.collect(),
    })
}

impl Figures {
    /// One side's figures after `sent` turns: its round trips and the CPU time they took, and
    /// the spurious wake-ups of both its ends.
    fn new(side: Side, latency: &LatencyRecorder, cpu: Duration, spurious: u64, sent: u64) -> Self {
        let (mechanism, variant) = (side.mechanism(), side.variant());
        Figures {
            side,
            p50_ns: latency.p50(),
            round_trip: Measurement::histogram(
                "round_trip",
                variant,
                mechanism,
                json!({}),
                latency,
                cpu_ns_per_op(cpu, latency.len()),
            ),
            spurious_wakeups: Measurement::value(
                "spurious_wakeups",
                variant,
                mechanism,
                json!({ "turns": sent }),
                "wake-ups",
                spurious as f64,
                None,
            ),
        }
    }
}

/// Runs the blocks with the pong thread beside us, then stops it; returns the turns made each
/// way and what the pong thread's waits saw.
fn with_pong_thread(
    ping: &mut Pinger<'_>,
    sides: &[Side],
    messages: u64,
    blocks: u64,
) -> Result<(u64, Waits)> {
    let local = ping.local;
    std::thread::scope(|s| {
        let pong = std::thread::Builder::new()
            .name("cv-pong".into())
            .spawn_scoped(s, || thread_pong(local))
            .context("spawn the pong thread")?;
        let result = ping.alternate(sides, messages, blocks);
        local.set(STOP);
        let (served, waits) = pong
            .join()
            .map_err(|_| anyhow!("the pong thread panicked"))?;
        let sent = result?;
        let expected = if sides.contains(&Side::Thread) {
            sent
        } else {
            0
        };
        ensure!(
            served == expected,
            "the pong thread answered {served} of {sent}"
        );
        Ok((sent, waits))
    })
}

/// The pong thread: answers `2i + 2` to every `2i + 1` until told to stop; returns the turns it
/// answered and what its waits saw.
fn thread_pong(local: &ThreadTurn) -> (u64, Waits) {
    let mut waits = Waits::default();
    let mut i = 0u64;
    while local.wait_for(2 * i + 1, &mut waits) != STOP {
        local.set(2 * i + 2);
        i += 1;
    }
    (i, waits)
}

/// The pinging side of both exchanges, the main thread; per side (indexed by [`Side`]), what
/// its waits saw, its timed round trips and the CPU time they took.
struct Pinger<'a> {
    turn: &'a Turn,
    local: &'a ThreadTurn,
    peer: &'a RefCell<Peer>,
    shutdown: &'a Shutdown,
    waits: [Waits; 2],
    latency: [LatencyRecorder; 2],
    cpu: [Duration; 2],
}

impl Pinger<'_> {
    /// The warm-up block (0, untimed), then the timed blocks, the sides alternating; returns
    /// the turns made each way.
    fn alternate(&mut self, sides: &[Side], messages: u64, blocks: u64) -> Result<u64> {
        let mut sent = 0;
        for block in 0..=blocks {
            let n = if block == 0 {
                messages / 10
            } else {
                messages / blocks
            };
            for &side in sides {
                self.run_block(side, sent..sent + n, block > 0)?;
            }
            sent += n;
        }
        Ok(sent)
    }

    /// Round trips `turns` on `side`, timed or not.
    fn run_block(&mut self, side: Side, turns: std::ops::Range<u64>, timed: bool) -> Result<()> {
        let i = side as usize;
        let watch = match side {
            Side::Process => vec![self.peer.borrow().pid()],
            Side::Thread => Vec::new(),
        };
        let cpu_before = CpuClock::now(&watch)?;
        for turn in turns {
            self.shutdown.check()?;
            let start = Instant::now();
            self.round_trip(side, turn)?;
            if timed {
                self.latency[i].record(start.elapsed());
            }
        }
        if timed {
            self.cpu[i] += CpuClock::since(cpu_before, &watch)?;
        }
        Ok(())
    }

    /// One turn each way: we set `2i + 1`, and wait for the other side's `2i + 2`.
    fn round_trip(&mut self, side: Side, i: u64) -> Result<()> {
        match side {
            Side::Process => {
                let (peer, shutdown) = (self.peer, self.shutdown);
                // A dead child is noticed between timed waits (see `pshared`), and explained.
                let alive = || !peer.borrow_mut().died() && shutdown.check().is_ok();
                let broke = |e| explain_break(std::slice::from_mut(&mut *peer.borrow_mut()), e);
                self.turn.set(2 * i + 1).map_err(broke)?;
                (self.turn)
                    .wait_for(2 * i + 2, &mut self.waits[0], &alive)
                    .map_err(broke)?;
            }
            Side::Thread => {
                self.local.set(2 * i + 1);
                self.local.wait_for(2 * i + 2, &mut self.waits[1]);
            }
        }
        Ok(())
    }
}
