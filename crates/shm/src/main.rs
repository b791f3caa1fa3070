//! # shm: a ring buffer in POSIX shared memory, between processes and between threads
//!
//! **Claims** (from the seed, checked on this machine):
//! * `comm.process-needs-ipc`: processes share memory only when they set it up (`shm_open`,
//!   `mmap(MAP_SHARED)`); a private mapping written by a forked child stays the child's;
//! * `comm.threads-faster`: threads talk faster; here, over the very same ring code, in ordinary
//!   memory, and through a crossbeam channel.
//!
//! **Steps**
//! 1. [`show_private_vs_shared`]: a forked child writes to a private mapping (`map_anon`) and to a
//!    shared one: the parent sees only the shared write (checked). This runs first, while this
//!    process has a single thread.
//! 2. [`measure`]: for each message size (64 B to 1 MiB, `config.bytes`), round trips (echoed)
//!    and a one-way stream (the far side checks each message and answers the end with a
//!    receipt), in alternating blocks, over three contenders: two processes over two rings in a
//!    POSIX shared-memory object (`shm_open` O_EXCL 0600, the fd inherited by the re-executed
//!    child, the name unlinked at once), two threads over the same ring code in ordinary memory,
//!    two threads over crossbeam channels. Every message carries its sequence number and a
//!    CRC-32 of its payload, both checked at the far end.
//! 3. Baselines, in blocks alternating with step 2's: [`Baselines`], one core's `memcpy`
//!    bandwidth, of blocks that stay in its cache and of buffers larger than the caches, and
//!    with `--pin split` 64 KiB blocks copied from one CPU to the other ([`cross_core_copy`]),
//!    between the stream blocks of one size; with `--pin split`, two threads spinning on one
//!    atomic ([`atomic_ping_pong`]) between the round-trip blocks. The floors and ceilings the
//!    ring's figures are read against.
//! 4. [`judge_claims`]: `comm.threads-faster` from the ring between threads against the same
//!    ring between processes, block pair by block pair: the round trip of the smallest size and
//!    the stream of 64 KiB messages (the other sizes are the series the report plots), once per
//!    placement; `comm.process-needs-ipc` from what step 1 saw.
//!
//! Steps 2 and 3 run once per placement: both sides on one CPU, then on two (`--pin each`, the
//! default); `--pin same|split` runs one, `--pin none` leaves it to the scheduler (shown, not
//! judged). Waiting (`--wait`): `block` spins about 10 µs then sleeps on a futex in the shared
//! page (on one CPU it sleeps at once); `spin` never sleeps, and runs on two CPUs only (with
//! `--pin each` it skips one CPU and says so; on one CPU a spinner waits for preemption). CPU per message shows what spinning costs. The ring's protocol is model-checked
//! with loom (`cargo xtask ci`).
//!
//! **Run it**: `cargo run --release -p shm` (about a second), `-- --json`,
//! `-- --pin split --wait spin --bytes 64`.

use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use crossbeam_channel::bounded;
use labkit::child::{Peer, explain_break};
use labkit::exit::usage;
use labkit::measure::{cpu_ns_per_op, mib_per_s};
use labkit::names::{Kind, reserve};
use labkit::pin::{PinGuard, Placement, pin_thread_to};
use labkit::report::{format_bytes, format_ns, placement_text};
use labkit::signals::Shutdown;
use labkit::{
    Better, CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, Pin, PinArgs, Report,
    RoleArgs, Test, Variant, Verdict,
};
use memmap2::{MmapMut, MmapOptions, MmapRaw};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde_json::json;
use shm::ring::{Header, Local, Ring};
use shm::wait::{self, Mode as WaitMode};

/// Slots per ring.
const SLOTS: u64 = 8;
/// Message sizes by default: 64 B to 1 MiB. The smallest holds a sequence number and a receipt.
const SIZES: [u64; 4] = [64, 4096, 65536, 1 << 20];
const MIN_BYTES: u64 = 64;
const MAX_BYTES: u64 = 1 << 20;
/// Round trips per size and contender, and bytes per stream, by default and with `--quick`.
const ROUND_TRIPS: u64 = 2_000;
const QUICK_ROUND_TRIPS: u64 = 150;
const STREAM: u64 = 16 << 20;
const QUICK_STREAM: u64 = 1 << 20;
/// Messages per stream block at the most: small messages on one CPU cost a context switch per
/// ring's worth, and 16 MiB of 64 B messages would take seconds to say what 1 MiB says.
const MAX_STREAM_MESSAGES: u64 = 16 << 10;
/// Round trips per size shrink so that no size moves more than this many bytes each way …
const RT_BYTES: u64 = 8 << 20;
/// … but never below this many.
const MIN_ROUND_TRIPS: u64 = 50;
const QUICK_MIN_ROUND_TRIPS: u64 = 10;
/// Alternating blocks (6 reach a 95% interval in one run), and with `--quick` (fewer: the
/// verdicts then say their lower confidence).
const BLOCKS: u64 = 6;
const QUICK_BLOCKS: u64 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Wait {
    /// Spin about 10 µs, then sleep on a futex.
    Block,
    /// Spin only: on two CPUs (--pin split, or each, which then skips one CPU).
    Spin,
}

#[derive(Parser, Debug)]
#[command(
    about = "A ring buffer in POSIX shared memory between processes vs the same ring and a channel between threads.",
    after_help = labkit::examples!(
        "",
        " -- --bytes 64 --pin split --wait spin",
        " -- --json | jq .claims"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    placing: PinArgs,

    /// One message size instead of 64 B, 4 KiB, 64 KiB and 1 MiB [from 64 to 1MiB].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(MIN_BYTES, MAX_BYTES))]
    bytes: Option<u64>,

    /// How a side waits for the other: `block` (spin ~10 µs, then a futex) or `spin`.
    #[arg(long, value_enum, default_value_t = Wait::Block)]
    wait: Wait,

    #[command(flatten)]
    role: RoleArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.role.role.is_some() {
        return labkit::finish(concat!(env!("CARGO_PKG_NAME"), " (child)"), run_child(args));
    }
    labkit::finish(env!("CARGO_PKG_NAME"), run(args))
}

fn run(args: Args) -> Result<Outcome> {
    let shutdown = labkit::signals::install().context("install SIGINT/SIGTERM handlers")?;
    let common = &args.common;
    // Spinning is judged on two CPUs only: on one, a spinning side waits for the other to be
    // preempted, milliseconds per hand-off. By default (`each`) it runs there alone.
    let pin = match (args.wait, args.placing.pin) {
        (Wait::Spin, Pin::Each | Pin::Split) => Pin::Split,
        (Wait::Spin, other) => {
            return Err(usage(format!(
                "--wait spin needs --pin split (or each, which then runs split alone): with \
                 --pin {}, a spinning side can wait for the other to be preempted, \
                 milliseconds per hand-off",
                other.as_str()
            )));
        }
        (Wait::Block, pin) => pin,
    };
    let (placements, left_out) = Placement::each(pin)?;
    let sizes: Vec<u64> = args.bytes.map_or_else(|| SIZES.to_vec(), |b| vec![b]);
    let quick = common.quick;
    let plan = Plan {
        quick,
        min_round_trips: if quick {
            QUICK_MIN_ROUND_TRIPS
        } else {
            MIN_ROUND_TRIPS
        },
        round_trips: if quick {
            QUICK_ROUND_TRIPS
        } else {
            ROUND_TRIPS
        },
        stream: if quick { QUICK_STREAM } else { STREAM },
        blocks: if quick { QUICK_BLOCKS } else { BLOCKS },
        wait: args.wait,
        sides: CONTENDERS.map(|(variant, _)| common.wants(variant)),
        // Set per round below.
        mode: wait_mode(args.wait, Pin::None),
        pin: Pin::None,
        placement: Placement::choose(Pin::None)?,
    };
    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    report.param("sizes", sizes.clone());
    report.param("slots", SLOTS);
    report.param("wait", wait_name(args.wait));
    report.param("pin", args.placing.pin.as_str());
    if let Some(why) = left_out {
        report.skip("round trips and streams on two CPUs", why);
    }
    if args.wait == Wait::Spin && args.placing.pin == Pin::Each {
        report.skip(
            "spinning on one CPU",
            "a spinning side on one CPU waits for the other to be preempted: --wait spin runs \
             on two CPUs only",
        );
    }
    report.param("round_trips", plan.round_trips);
    report.param("stream_bytes", plan.stream);

    // Forking runs first, while this process has one thread; it is the process side's lesson.
    let sharing = if common.wants(Variant::Process) {
        Some(show_private_vs_shared(&mut report)?)
    } else {
        None
    };
    let mut series = Vec::new();
    let rounds = placements.len();
    for (round, (pin, placement)) in placements.into_iter().enumerate() {
        let plan = Plan {
            pin,
            placement,
            mode: wait_mode(args.wait, pin),
            ..plan.clone()
        };
        let _pin = PinGuard::pin(placement.main).context("sched_setaffinity (main thread)")?;
        // On two CPUs, the atomic ping-pong is measured block by block beside the rings.
        // (Two threads: the thread side's baseline.)
        let mut atomic = (plan.pin == Pin::Split && plan.sides[1]).then(LatencyRecorder::new);
        // The other baselines, in the last round (two CPUs when both run), beside the streams
        // of the size the summary reads them against.
        let mut baselines = (round + 1 == rounds).then(|| Baselines::new(&plan));
        let beside = stream_size_to_compare(&sizes);
        for &bytes in &sizes {
            let b = baselines.as_mut().filter(|_| bytes == beside);
            series.push(measure(
                &mut report,
                &plan,
                bytes,
                &mut atomic,
                b,
                shutdown,
            )?);
        }
        if let Some(atomic) = atomic {
            report.measure(Measurement::histogram(
                "round_trip",
                Variant::Thread,
                "atomic-spin",
                // Beside the round trips of this run's --wait: its figure is theirs.
                json!({ "pin": "split", "wait": wait_name(args.wait) }),
                &atomic,
                None,
            ));
        }
        if let Some(baselines) = baselines {
            baselines.report(&mut report);
        }
    }
    common.note_one_side(&mut report);
    judge_claims(&mut report, &series, sharing.as_ref());
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    Ok(Outcome::of(&report))
}

#[derive(Clone)]
struct Plan {
    /// Which of [`CONTENDERS`] run (all, unless `--variant` picked one side).
    sides: [bool; 3],
    quick: bool,
    round_trips: u64,
    min_round_trips: u64,
    stream: u64,
    blocks: u64,
    mode: WaitMode,
    wait: Wait,
    pin: Pin,
    placement: Placement,
}

/// What step 1 saw: the parent's view of the child's writes to both pages.
struct Sharing {
    /// What the parent read in its private page, and in the shared one, after the child wrote 7.
    private: u8,
    shared: u8,
}

impl Sharing {
    /// `comm.process-needs-ipc` from what was seen: a private write that reached us would mean
    /// memory shared with no IPC at all (does not hold); a shared one that did not, that the
    /// mechanism itself failed (no verdict).
    fn verdict(&self) -> (Verdict, String) {
        let seen = format!(
            "a forked child wrote 7 to a private page and to a shm_open'ed MAP_SHARED one; the \
             parent then read {} and {}",
            self.private, self.shared
        );
        match (self.private == 7, self.shared == 7) {
            (true, _) => (
                Verdict::DoesNotHold,
                format!("{seen}: the private write reached us with no IPC at all"),
            ),
            (false, true) => (
                Verdict::Holds,
                format!(
                    "{seen}: memory is shared between processes only where they arrange it (the \
                     rings between processes worked only in such an object)"
                ),
            ),
            (false, false) => (
                Verdict::Inconclusive,
                format!("{seen}: the shared object itself did not carry the write"),
            ),
        }
    }
}

/// Step 1: a private mapping stays the child's; a shared one is everyone's.
fn show_private_vs_shared(report: &mut Report) -> Result<Sharing> {
    let mut private = MmapMut::map_anon(4096).context("mmap a private page")?;
    let shared_fd = shm_object(4096)?;
    let shared = MmapRaw::map_raw(&shared_fd).context("mmap the shared page")?;
    if labkit::procfs::thread_count(std::process::id()) != Some(1) {
        bail!("refusing to fork: this process has more than one thread");
    }
    // SAFETY: this process has one thread (checked just above: this step runs first), so the
    // child is a consistent copy; it only writes two bytes and leaves with `_exit`.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            private[0] = 7;
            // SAFETY: the shared page is mapped (4096 bytes) and nobody else writes it now.
            unsafe { *shared.as_mut_ptr() = 7 };
            // SAFETY: leaves without running the parent's exit code.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            nix::sys::wait::waitpid(child, None).context("waitpid")?;
        }
    }
    // SAFETY: the page is mapped; the child has exited, so nothing writes it concurrently.
    let (mine, ours) = (private[0], unsafe { *shared.as_mut_ptr() });
    let ok = mine == 0 && ours == 7;
    report.check(
        "a forked child's write reaches a shared mapping, not a private one",
        ok,
        format!("the child wrote 7 to both; the parent reads {mine} in its private (copy-on-write) page and {ours} in the shared one"),
    );
    Ok(Sharing {
        private: mine,
        shared: ours,
    })
}

/// A POSIX shared-memory object of `len` bytes, created O_EXCL 0600 and unlinked at once: its
/// descriptor is all anyone needs (a child inherits it).
fn shm_object(len: u64) -> Result<OwnedFd> {
    let mut r = reserve(Kind::Shm)?;
    let fd = nix::sys::mman::shm_open(
        r.name(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .with_context(|| format!("shm_open({}, O_CREAT|O_EXCL, 0600)", r.name()))?;
    r.mark_created();
    r.unlink().context("shm_unlink")?;
    nix::unistd::ftruncate(&fd, len as i64).context("ftruncate the shared-memory object")?;
    Ok(fd)
}

/// The layout of a shared region: two headers (to the child, back), then the two rings' slots.
fn region_len(bytes: u64) -> usize {
    2 * std::mem::size_of::<Header>() + 2 * (SLOTS * bytes) as usize
}

/// The two rings in a mapped region.
///
/// # Safety
/// `map` must be `region_len(bytes)` bytes, shared with at most one other process that uses the
/// rings the other way round. (The rings borrow `map`, so they cannot outlive it.)
unsafe fn rings(map: &MmapRaw, bytes: u64) -> (Ring<'_>, Ring<'_>) {
    let base = map.as_mut_ptr();
    let h = std::mem::size_of::<Header>();
    let slots = (SLOTS * bytes) as usize;
    // SAFETY: by the caller's contract; the headers are page-aligned (offset 0) or aligned to
    // their 64-byte lines (offset `h`, a multiple of 64), zero-initialised by ftruncate (a valid
    // all-zero `Header`), and the slot areas follow them without overlap.
    unsafe {
        let to_child = &*base.cast::<Header>();
        let back = &*base.add(h).cast::<Header>();
        (
            Ring::new(to_child, base.add(2 * h), SLOTS, bytes as usize),
            Ring::new(back, base.add(2 * h + slots), SLOTS, bytes as usize),
        )
    }
}

/// The payload every message carries, written with one copy (as a real message is written from
/// a buffer): a fixed pattern, up to the largest message.
fn template() -> &'static [u8] {
    static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| (0..MAX_BYTES as usize).map(|i| (i % 251) as u8).collect())
}

/// What a message asks of the far side, in its bytes 12..16.
const ECHO: u32 = 0; // Send it back (round trips).
const DATA: u32 = 1; // Check it and count it (streams).
const END: u32 = 2; // The stream is over: answer with a receipt.
const STOP: u32 = 3; // Stop.

/// Fills a message: its sequence number, a CRC-32 of its payload, its kind, then the payload.
/// The far end checks both: a lost, repeated or reordered message breaks the sequence, a damaged
/// one the CRC.
fn fill(msg: &mut [u8], seq: u64, kind: u32) {
    let payload = &template()[..msg.len() - 16];
    msg[16..].copy_from_slice(payload);
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[8..12].copy_from_slice(&payload_crc(payload.len()).to_le_bytes());
    set_kind(msg, kind);
}

fn set_kind(msg: &mut [u8], kind: u32) {
    msg[12..16].copy_from_slice(&kind.to_le_bytes());
}

fn kind_of(msg: &[u8]) -> u32 {
    u32::from_le_bytes(msg[12..16].try_into().expect("4 bytes"))
}

/// The CRC-32 of the template's first `len` bytes, computed once per length: the sender knows
/// what it sends. (The receiver still computes the CRC of every payload it gets.)
fn payload_crc(len: usize) -> u32 {
    thread_local!(static LAST: std::cell::Cell<(usize, u32)> = const { std::cell::Cell::new((usize::MAX, 0)) });
    LAST.with(|last| {
        if last.get().0 != len {
            last.set((len, crc32fast::hash(&template()[..len])));
        }
        last.get().1
    })
}

fn is_message(msg: &[u8], seq: u64) -> bool {
    msg[..8] == seq.to_le_bytes() && msg[8..12] == crc32fast::hash(&msg[16..]).to_le_bytes()
}

/// What the far side counted of one stream, sent back when the stream ends (in a message: its
/// count, its kind END, what was wrong, the first sequence number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Receipt {
    count: u64,
    wrong: u64,
    first: u64,
}

impl Receipt {
    /// Counts one DATA message: each must be the one after the stream's first, intact.
    fn check(&mut self, msg: &[u8]) {
        if self.count == 0 {
            self.first = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
        }
        self.wrong += u64::from(!is_message(msg, self.first + self.count));
        self.count += 1;
    }

    fn write(&self, msg: &mut [u8]) {
        msg[..8].copy_from_slice(&self.count.to_le_bytes());
        set_kind(msg, END);
        msg[16..24].copy_from_slice(&self.wrong.to_le_bytes());
        msg[24..32].copy_from_slice(&self.first.to_le_bytes());
    }

    fn read(msg: &[u8]) -> Receipt {
        let word = |at: usize| u64::from_le_bytes(msg[at..at + 8].try_into().expect("8 bytes"));
        Receipt {
            count: word(0),
            wrong: word(16),
            first: word(24),
        }
    }

    /// How many of the `n` messages sent from `first` did not arrive once, in order, intact.
    fn missed(&self, first: u64, n: u64) -> u64 {
        self.wrong + n.abs_diff(self.count) + u64::from(self.count > 0 && self.first != first)
    }
}

/// One size's figures, per contender: [process-shm, thread-ring, thread-channel].
struct Series {
    bytes: u64,
    pin: Pin,
    rt_blocks: [Vec<f64>; 3],
    tp_blocks: [Vec<f64>; 3],
}

const CONTENDERS: [(Variant, &str); 3] = [
    (Variant::Process, "shm-ring"),
    (Variant::Thread, "ring"),
    (Variant::Thread, "channel"),
];

/// Step 2, for one size: round trips then streams, contenders alternating block by block; with
/// `atomic`, a block of the atomic ping-pong after each block of round trips, added to it; with
/// `baselines`, a block of each after each block of streams.
fn measure(
    report: &mut Report,
    plan: &Plan,
    bytes: u64,
    atomic: &mut Option<LatencyRecorder>,
    mut baselines: Option<&mut Baselines>,
    shutdown: &Shutdown,
) -> Result<Series> {
    // The process contender: a region in a shared-memory object, a child on the other side.
    let fd = shm_object(region_len(bytes) as u64)?;
    let map = MmapOptions::new()
        .len(region_len(bytes))
        .map_raw(&fd)
        .context("mmap the shared-memory object")?;
    let extra = [
        "--bytes".to_owned(),
        bytes.to_string(),
        "--wait".to_owned(),
        if plan.wait == Wait::Spin {
            "spin"
        } else {
            "block"
        }
        .to_owned(),
        "--pin".to_owned(), // The child waits as we do (see `wait_mode`).
        plan.pin.as_str().to_owned(),
    ];
    // With `--variant thread`, no child: the region stays ours alone, unused.
    let peer = if plan.sides[0] {
        let peer = Peer::spawn("echo", &[fd.as_fd()], plan.placement.peer, &extra)?;
        Some(RefCell::new(peer))
    } else {
        None
    };
    drop(fd); // The child holds the object now; our mapping keeps it alive for us.
    // SAFETY: `map` is `region_len(bytes)` long, shared with the child only, and outlives the
    // rings (both are dropped at the end of this function, the child first: see below).
    let (p_out, p_in) = unsafe { rings(&map, bytes) };
    let child = || peer.as_ref().expect("the process contender has its child");
    let alive = || peer.as_ref().is_none_or(|p| !p.borrow_mut().died()) && shutdown.check().is_ok();

    // The thread contenders: the same rings in ordinary memory, and channels.
    let (l_out, l_in) = (
        Local::new(SLOTS, bytes as usize),
        Local::new(SLOTS, bytes as usize),
    );
    let (t_out, t_in) = (l_out.ring(), l_in.ring());
    let (to_echo, echo_rx) = bounded::<Box<[u8]>>(SLOTS as usize);
    let (echo_tx, from_echo) = bounded::<Box<[u8]>>(SLOTS as usize);
    let size = bytes as usize;
    let mut rt = [
        LatencyRecorder::new(),
        LatencyRecorder::new(),
        LatencyRecorder::new(),
    ];
    let mut series = Series {
        bytes,
        pin: plan.pin,
        rt_blocks: Default::default(),
        tp_blocks: Default::default(),
    };
    let mut cpu_rt = [Duration::ZERO; 3];
    let mut cpu_tp = [Duration::ZERO; 3];
    let mut tp_time = [Duration::ZERO; 3];
    let mut wrong = 0u64;
    let mode = plan.mode;
    let pid: Vec<_> = peer.iter().map(|p| p.borrow().pid()).collect();
    let messages = (plan.stream / bytes).clamp(1, MAX_STREAM_MESSAGES);

    std::thread::scope(|s| -> Result<()> {
        // The thread echoes: one for the ring, one for the channel. An empty boxed slice, or
        // a STOP message, ends them.
        let cpu = plan.placement.peer;
        let (echo_in, echo_out) = (&l_out, &l_in);
        s.spawn(move || {
            pin_thread_to(cpu);
            // The echo's own views of the rings: each side keeps its indices to itself.
            echo_loop(&echo_in.ring(), &echo_out.ring(), echo_mode(mode), &|| true)
        });
        s.spawn(move || {
            pin_thread_to(cpu);
            // Every buffer goes back: echoed, or checked and returned empty-handed (the
            // producer's pool, as a ring's slots come back), or carrying a stream's receipt.
            let mut stream = Receipt::default();
            for mut msg in echo_rx {
                if msg.is_empty() {
                    break;
                }
                match kind_of(&msg) {
                    DATA => stream.check(&msg),
                    END => std::mem::take(&mut stream).write(&mut msg),
                    _ => {}
                }
                if echo_tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let mut buf: Option<Box<[u8]>> = Some(vec![0u8; size].into_boxed_slice());
        // The channel stream's buffers, one per slot, made before any clock runs.
        let mut pool: Vec<Box<[u8]>> = (0..SLOTS)
            .map(|_| vec![0u8; size].into_boxed_slice())
            .collect();
        let mut seq = [0u64; 3];
        let result = (|| -> Result<()> {
            for block in 0..=plan.blocks {
                // Round trips.
                // Fewer round trips for large messages (a 1 MiB round trip takes about a millisecond).
                let per_size = plan
                    .round_trips
                    .min(RT_BYTES / bytes)
                    .max(plan.min_round_trips);
                let n = if block == 0 {
                    (per_size / 10).max(1)
                } else {
                    (per_size / plan.blocks).max(1)
                };
                for c in (0..3).filter(|&c| plan.sides[c]) {
                    let watch: &[_] = if c == 0 { &pid } else { &[] };
                    let cpu_before = CpuClock::now(watch)?;
                    let mut this = LatencyRecorder::new();
                    for _ in 0..n {
                        shutdown.check()?;
                        let i = seq[c];
                        let start = Instant::now();
                        let ok = match c {
                            0 => {
                                wait::push(&p_out, mode, &alive, |m| fill(m, i, ECHO))
                                    .map_err(|e| broke(child(), e))?;
                                wait::pop(&p_in, mode, &alive, |m| is_message(m, i))
                                    .map_err(|e| broke(child(), e))?
                            }
                            1 => {
                                wait::push(&t_out, mode, &|| true, |m| fill(m, i, ECHO))?;
                                wait::pop(&t_in, mode, &|| true, |m| is_message(m, i))?
                            }
                            _ => {
                                let mut m = buf.take().expect("the buffer came back");
                                fill(&mut m, i, ECHO);
                                to_echo.send(m).context("the echo thread is gone")?;
                                let m = from_echo.recv().context("the echo thread is gone")?;
                                let ok = is_message(&m, i);
                                buf = Some(m);
                                ok
                            }
                        };
                        if block > 0 {
                            this.record(start.elapsed());
                        }
                        wrong += u64::from(!ok);
                        seq[c] += 1;
                    }
                    if block > 0 {
                        cpu_rt[c] += CpuClock::since(cpu_before, watch)?;
                        rt[c].add(&this);
                        series.rt_blocks[c].push(this.p50() as f64);
                    }
                }
                // The floor under any spinning hand-off, in the same alternation: the host may
                // move the vCPUs during a run, and a ratio of figures from different moments
                // would mislead.
                if let Some(atomic) = atomic.as_mut() {
                    let spun =
                        atomic_ping_pong(plan.round_trips / plan.blocks, plan.placement.peer);
                    if block > 0 {
                        atomic.add(&spun);
                    }
                }
                // Streams, one way: the far side checks each message and answers the end of
                // the stream with a receipt.
                if block == 0 {
                    continue;
                }
                for c in (0..3).filter(|&c| plan.sides[c]) {
                    let watch: &[_] = if c == 0 { &pid } else { &[] };
                    let cpu_before = CpuClock::now(watch)?;
                    let start = Instant::now();
                    wrong += match c {
                        0 => stream_ring(&p_out, &p_in, mode, &alive, seq[0], messages)
                            .map_err(|e| broke(child(), e))?,
                        1 => stream_ring(&t_out, &t_in, mode, &|| true, seq[1], messages)?,
                        _ => stream_channel(&to_echo, &from_echo, &mut pool, seq[2], messages)?,
                    };
                    seq[c] += messages;
                    let took = start.elapsed();
                    tp_time[c] += took;
                    cpu_tp[c] += CpuClock::since(cpu_before, watch)?;
                    series.tp_blocks[c].push(mib_per_s(messages * bytes, took));
                }
                if let Some(baselines) = baselines.as_deref_mut() {
                    shutdown.check()?;
                    // A spinning echo spins on for up to PATIENCE after its last message: let
                    // it fall asleep, so that the baselines have both CPUs to themselves.
                    std::thread::sleep(2 * wait::PATIENCE);
                    baselines.block(plan.blocks)?;
                }
            }
            Ok(())
        })();
        // Stop the thread echoes whatever happened.
        let _ = wait::push(&t_out, mode, &|| true, |m| set_kind(m, STOP));
        let _ = to_echo.send(Box::new([]));
        result
    })?;
    // Stop the child, then wait for it; only then may the mapping go.
    if peer.is_some() {
        wait::push(&p_out, mode, &alive, |m| set_kind(m, STOP)).map_err(|e| broke(child(), e))?;
    }
    if let Some(peer) = peer {
        peer.into_inner().finish()?;
    }
    drop(map);

    let config = json!({ "bytes": bytes, "wait": if mode == WaitMode::Spin { "spin" } else { "block" }, "pin": plan.pin.as_str() });
    for (c, (variant, mechanism)) in CONTENDERS
        .into_iter()
        .enumerate()
        .filter(|&(c, _)| plan.sides[c])
    {
        report.measure(Measurement::histogram(
            "round_trip",
            variant,
            mechanism,
            config.clone(),
            &rt[c],
            cpu_ns_per_op(cpu_rt[c], rt[c].len()),
        ));
        let moved = messages * plan.blocks;
        report.measure(Measurement::value(
            "throughput",
            variant,
            mechanism,
            config.clone(),
            "MiB/s",
            mib_per_s(moved * bytes, tp_time[c]),
            cpu_ns_per_op(cpu_tp[c], moved),
        ));
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
    Ok(series)
}

/// Bytes copied for each memcpy baseline.
const MEMCPY_BYTES: u64 = 256 << 20;
/// The buffers of the memcpy through memory: larger than the last-level cache of most machines
/// (32 MiB on this lab's VM), so that the copy runs at the memory's pace; smaller with `--quick`.
const MEMORY_COPY: usize = 64 << 20;
const QUICK_MEMORY_COPY: usize = 8 << 20;

/// Step 2b: what the hardware allows, in the same run, a block at a time between the stream
/// blocks of one size (the host's load and the vCPUs' placement change during a run: figures
/// from another moment would mislead). One core's `memcpy`, of 64 KiB blocks that stay in its
/// cache and of buffers far larger than it (what "memcpy bandwidth" usually means: the
/// memory's pace); and, with the sides on two CPUs, 64 KiB blocks copied from one CPU to the
/// other ([`cross_core_copy`]). (The atomic ping-pong runs beside the round trips.)
struct Baselines {
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
    fn new(plan: &Plan) -> Baselines {
        let through_memory = if plan.quick {
            QUICK_MEMORY_COPY
        } else {
            MEMORY_COPY
        };
        Baselines {
            copies: [Copying::new(64 << 10), Copying::new(through_memory)],
            // Two sides placed by the scheduler may share a CPU: no cross-core figure then.
            cross_core: (plan.pin == Pin::Split && plan.sides[1]).then_some((0, Duration::ZERO)),
            peer: plan.placement.peer,
            wait: plan.wait,
        }
    }

    /// One block of each: `1 / blocks` of [`MEMCPY_BYTES`] per baseline.
    fn block(&mut self, blocks: u64) -> Result<()> {
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

    fn report(&self, report: &mut Report) {
        for c in &self.copies {
            if c.rounds == 0 {
                continue;
            }
            report.measure(Measurement::value(
                "throughput",
                Variant::Serial,
                "memcpy",
                json!({ "bytes": c.src.len() }),
                "MiB/s",
                mib_per_s(c.rounds * c.src.len() as u64, c.took),
                cpu_ns_per_op(c.cpu, c.rounds),
            ));
        }
        if let Some((moved, took)) = self.cross_core.filter(|&(moved, _)| moved > 0) {
            report.measure(Measurement::value(
                "throughput",
                Variant::Thread,
                "cross-core-copy",
                json!({ "bytes": CROSS_BLOCK, "pin": "split", "wait": wait_name(self.wait) }),
                "MiB/s",
                mib_per_s(moved, took),
                None,
            ));
        }
    }
}

/// The message size whose streams the baselines run beside: the largest up to 64 KiB (a size
/// a ring's slots keep in the caches), or the smallest there is.
fn stream_size_to_compare(sizes: &[u64]) -> u64 {
    let small = sizes.iter().copied().filter(|&b| b <= 64 << 10).max();
    small
        .or_else(|| sizes.iter().copied().min())
        .unwrap_or(64 << 10)
}

/// Two threads, this one and one on `peer`, spinning on one atomic word: `n` round trips of a
/// cache line, the floor under any spinning hand-off (with `--pin split`).
fn atomic_ping_pong(n: u64, peer: Option<usize>) -> LatencyRecorder {
    use std::sync::atomic::{AtomicU64, Ordering};
    let word = AtomicU64::new(0);
    let mut lat = LatencyRecorder::new();
    std::thread::scope(|s| {
        let word = &word;
        s.spawn(move || {
            pin_thread_to(peer);
            for i in 0..n {
                while word.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                word.store(2 * i + 2, Ordering::Release);
            }
        });
        for i in 0..n {
            let start = Instant::now();
            word.store(2 * i + 1, Ordering::Release);
            while word.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
            lat.record(start.elapsed());
        }
    });
    lat
}

/// The cross-core copy's block.
const CROSS_BLOCK: usize = 64 << 10;

/// Step 2c (with `--pin split`): the bandwidth of bytes that *cross* cores, which every stream
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
        let reader = s.spawn(move || {
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
        });
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

/// The error for a broken exchange with the child (see `labkit::child::explain_break`).
fn broke(peer: &RefCell<Peer>, err: std::io::Error) -> anyhow::Error {
    explain_break(std::slice::from_mut(&mut *peer.borrow_mut()), err)
}

/// `--wait`'s value as the Report says it.
fn wait_name(wait: Wait) -> &'static str {
    match wait {
        Wait::Spin => "spin",
        Wait::Block => "block",
    }
}

/// How a side waits, from `--wait` and `--pin`: blocking on one CPU sleeps at once, since the
/// other side cannot run while we spin (each hand-off would wait out the spin).
fn wait_mode(wait: Wait, pin: Pin) -> WaitMode {
    match (wait, pin) {
        (Wait::Spin, _) => WaitMode::Spin,
        (Wait::Block, Pin::Same) => WaitMode::Sleep,
        (Wait::Block, _) => WaitMode::Block,
    }
}

/// An echo spins only while its exchange runs: idle during another contender's block, it sleeps,
/// or two spinners would share the peer CPU and each hand-off would wait for the scheduler.
fn echo_mode(mode: WaitMode) -> WaitMode {
    if mode == WaitMode::Spin {
        WaitMode::Patient
    } else {
        mode
    }
}

/// The far side of a ring pair: sends ECHO messages back, checks DATA messages and answers END
/// with their receipt, returns at STOP. An echo is copied straight from the inbox's slot into
/// the outbox's: the inbox slot is held until the outbox has room (the other side always drains
/// its inbox, so that wait ends).
fn echo_loop(
    inbox: &Ring<'_>,
    outbox: &Ring<'_>,
    mode: WaitMode,
    alive: &dyn Fn() -> bool,
) -> std::io::Result<()> {
    let mut stream = Receipt::default();
    loop {
        let kind = wait::pop(inbox, mode, alive, |m| {
            let kind = kind_of(m);
            match kind {
                ECHO => wait::push(outbox, mode, alive, |slot| slot.copy_from_slice(m))?,
                DATA => stream.check(m),
                END => {
                    let receipt = std::mem::take(&mut stream);
                    wait::push(outbox, mode, alive, |slot| receipt.write(slot))?;
                }
                STOP => {}
                other => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("a message of unknown kind {other}"),
                    ));
                }
            }
            Ok(kind)
        })??;
        if kind == STOP {
            return Ok(());
        }
    }
}

/// Streams `n` DATA messages from `first` through `out`, then END, and reads the receipt that
/// comes back; returns how many messages did not arrive once, in order, intact.
fn stream_ring(
    out: &Ring<'_>,
    back: &Ring<'_>,
    mode: WaitMode,
    alive: &dyn Fn() -> bool,
    first: u64,
    n: u64,
) -> std::io::Result<u64> {
    for k in 0..n {
        wait::push(out, mode, alive, |m| fill(m, first + k, DATA))?;
    }
    wait::push(out, mode, alive, |m| set_kind(m, END))?;
    let receipt = wait::pop(back, mode, alive, Receipt::read)?;
    Ok(receipt.missed(first, n))
}

/// The same stream over channels: the buffers of `pool` travel, the far side sends each back
/// once checked (as a ring's slot comes free), and the END buffer comes back with the receipt.
fn stream_channel(
    out: &crossbeam_channel::Sender<Box<[u8]>>,
    back: &crossbeam_channel::Receiver<Box<[u8]>>,
    pool: &mut Vec<Box<[u8]>>,
    first: u64,
    n: u64,
) -> Result<u64> {
    let gone = "the echo thread is gone";
    let next_buffer = |pool: &mut Vec<Box<[u8]>>| match pool.pop() {
        Some(m) => Ok(m),
        None => back.recv().context(gone),
    };
    for k in 0..n {
        let mut m = next_buffer(pool)?;
        fill(&mut m, first + k, DATA);
        out.send(m).context(gone)?;
    }
    let mut m = next_buffer(pool)?;
    set_kind(&mut m, END);
    out.send(m).context(gone)?;
    loop {
        let m = back.recv().context(gone)?;
        let end = kind_of(&m) == END;
        let receipt = end.then(|| Receipt::read(&m));
        pool.push(m);
        if let Some(receipt) = receipt {
            return Ok(receipt.missed(first, n));
        }
    }
}

/// Step 3: the claims.
fn judge_claims(report: &mut Report, series: &[Series], sharing: Option<&Sharing>) {
    let pick = |r: &Report, name: &str, mech: &str, bytes: u64, pin: Pin| {
        r.measurements
            .iter()
            .find(|m| {
                m.name == name
                    && m.mechanism == mech
                    && m.config.get("bytes").and_then(|b| b.as_u64()) == Some(bytes)
                    && m.config.get("pin").and_then(|p| p.as_str()) == Some(pin.as_str())
            })
            .cloned()
    };
    // One judged size per measure, as in the other topics: round trips of the smallest message,
    // streams of the size the memcpy baselines run beside. The other sizes are the series the
    // report plots: figures, not findings.
    let sizes: Vec<u64> = series.iter().map(|s| s.bytes).collect();
    let judged = [
        sizes.iter().copied().min().unwrap_or(0),
        stream_size_to_compare(&sizes),
    ];
    let mut summary = Vec::new();
    for s in series.iter().filter(|s| s.pin.judged()) {
        let place = placement_text(s.pin.as_str());
        for (name, blocks, lower) in [
            ("round_trip", &s.rt_blocks, true),
            ("throughput", &s.tp_blocks, false),
        ] {
            if s.bytes != judged[usize::from(!lower)] {
                continue;
            }
            let (Some(p), Some(t)) = (
                pick(report, name, "shm-ring", s.bytes, s.pin),
                pick(report, name, "ring", s.bytes, s.pin),
            ) else {
                continue;
            };
            let what = if lower {
                format!(
                    "round trip of {} through the same ring, {place}",
                    format_bytes(s.bytes)
                )
            } else {
                format!(
                    "stream of {} messages through the same ring, {place}",
                    format_bytes(s.bytes)
                )
            };
            let (unit, better) = if lower {
                ("ns", Better::Lower)
            } else {
                ("MiB/s", Better::Higher)
            };
            let test = Test::new(what, unit, better, "faster")
                .favoured("threads", &blocks[1])
                .other("processes over shared memory", &blocks[0]);
            if name == "round_trip" {
                let (t, p) = test.medians();
                summary.push(format!(
                    "{} on {place} {} vs {}",
                    format_bytes(s.bytes),
                    format_ns(p),
                    format_ns(t)
                ));
            }
            report
                .claim_measured("comm.threads-faster", test, [&p, &t])
                .placement = Some(s.pin.as_str().to_owned());
        }
    }
    // A failed check means the rings may not have carried what they should: no finding then.
    if let Some(sharing) = sharing.filter(|_| report.passed()) {
        let (verdict, evidence) = sharing.verdict();
        report.claim_observed("comm.process-needs-ipc", verdict, evidence);
    }
    // The stream against one core's memcpy, measured beside it.
    let memcpy: Vec<&Measurement> = report
        .measurements
        .iter()
        .filter(|m| m.mechanism == "memcpy")
        .collect();
    // The baselines ran in the last round of placements.
    let stream = series
        .last()
        .and_then(|last| pick(report, "throughput", "shm-ring", judged[1], last.pin));
    if let (Some(stream), [in_cache, in_memory]) = (stream, memcpy.as_slice()) {
        let rate = stream.value.unwrap_or(0.0);
        let share = |m: &Measurement| 100.0 * rate / m.value.unwrap_or(f64::INFINITY);
        summary.push(format!(
            "{} stream between processes {rate:.0} MiB/s, {:.0}% of one core's memcpy through \
             memory, {:.0}% of its memcpy in cache",
            format_bytes(stream.config["bytes"].as_u64().unwrap_or(0)),
            share(in_memory),
            share(in_cache)
        ));
    }
    report.summary = format!(
        "ring round trip p50, processes over shm vs threads: {}{}",
        summary.join("; "),
        if report.passed() {
            "; every message arrived intact."
        } else {
            "; a check FAILED."
        }
    );
}

/// The far side as a child: maps the region it inherited and serves it until STOP.
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    if args.role.role.as_deref() != Some("echo") {
        return Err(usage(format!(
            "unknown role `{}`",
            args.role.role.unwrap_or_default()
        )));
    }
    let fd = args
        .role
        .take_fds()?
        .into_iter()
        .next()
        .context("no shared-memory fd passed")?;
    let bytes = args.bytes.context("--bytes is required")?;
    let map = MmapOptions::new()
        .len(region_len(bytes))
        .map_raw(&fd)
        .context("mmap the shared-memory object")?;
    // SAFETY: the parent made the region `region_len(bytes)` long and keeps it mapped; we use
    // its rings the other way round.
    let (inbox, outbox) = unsafe { rings(&map, bytes) };
    let mode = wait_mode(args.wait, args.placing.pin);
    // Our parent's death kills us (PR_SET_PDEATHSIG): no liveness check needed on this side.
    echo_loop(&inbox, &outbox, echo_mode(mode), &|| true).context("echo")?;
    Ok(Outcome::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_checked_by_sequence_and_checksum() {
        let mut m = vec![0u8; 4096];
        fill(&mut m, 42, DATA);
        assert!(is_message(&m, 42));
        assert_eq!(kind_of(&m), DATA);
        assert!(!is_message(&m, 43), "a message out of sequence");
        m[1000] ^= 1;
        assert!(!is_message(&m, 42), "a damaged payload");
    }

    /// The far side's receipt counts what a stream lost, repeated or damaged; the sender reads it
    /// back from a message.
    #[test]
    fn a_receipt_counts_what_went_wrong() {
        let stream = |seqs: &[u64], damage: Option<usize>| {
            let mut r = Receipt::default();
            for (i, &seq) in seqs.iter().enumerate() {
                let mut m = vec![0u8; 64];
                fill(&mut m, seq, DATA);
                if damage == Some(i) {
                    m[40] ^= 1;
                }
                r.check(&m);
            }
            let mut wire = vec![0u8; 64];
            r.write(&mut wire);
            assert_eq!(kind_of(&wire), END);
            Receipt::read(&wire).missed(10, 4)
        };
        assert_eq!(stream(&[10, 11, 12, 13], None), 0);
        assert_eq!(stream(&[10, 11, 12, 13], Some(2)), 1, "a damaged payload");
        assert_eq!(stream(&[10, 12, 13], None), 3, "one lost, two out of place");
        assert_eq!(
            stream(&[10, 11, 11, 12], None),
            2,
            "a repeat shifts the rest"
        );
        assert_eq!(
            stream(&[11, 12, 13], None),
            2,
            "the first lost: short, wrong first"
        );
        assert_eq!(stream(&[10, 11, 12, 13, 14], None), 1, "one too many");
    }

    /// `comm.process-needs-ipc` follows what the parent read: forced the other way (the
    /// child's private write reached us, as it would from a thread), it does not hold.
    #[test]
    fn the_ipc_claim_follows_what_was_observed() {
        let verdict = |private, shared| Sharing { private, shared }.verdict();
        assert_eq!(verdict(0, 7).0, Verdict::Holds);
        let (v, evidence) = verdict(7, 7);
        assert_eq!(v, Verdict::DoesNotHold);
        assert!(evidence.contains("read 7 and 7"), "{evidence}");
        assert_eq!(verdict(0, 0).0, Verdict::Inconclusive);
    }
}

#[cfg(test)]
mod flag_tests {
    /// Random command lines (see `testkit::fuzz_flags`): accepted or refused with a
    /// message naming the limit, never a panic. `LAB_FUZZ_CASES=10000` for the full figure.
    #[test]
    fn random_flags_are_accepted_or_refused_never_a_panic() {
        testkit::fuzz_flags::<super::Args>(testkit::fuzz_cases());
    }
}
