//! # semaphore: counting semaphores between processes and between threads
//!
//! **Claim** (from the seed, checked on this machine): `sync.primitives`: semaphores coordinate
//! producers and consumers (here: a bounded buffer that loses, repeats and reorders nothing,
//! between processes and between threads).
//!
//! **Steps**
//! 1. [`measure_wake`]: post → wait → post back, between two processes on unnamed process-shared
//!    semaphores in shared memory, and between two threads on a `Mutex` + `Condvar` semaphore
//!    (std has none), in alternating blocks: half a round trip is the wake-up latency.
//! 2. [`measure_buffer`]: a bounded buffer of 64 slots with `empty`, `full` and `lock`
//!    semaphores; `--producers` producers put `--items` numbered items each, one consumer takes
//!    them and checks every producer's sequence. Three ways, alternating: child processes with
//!    unnamed `sem_t`s (`pshared = 1`) in a `memfd` page; child processes with named semaphores
//!    (`sem_open`, `O_EXCL`, 0600, unlinked as soon as every producer has them open); threads
//!    with the `Condvar` semaphore.
//! 3. [`judge_claims`].
//!
//! A dead peer is noticed through its pidfd, never by a timeout: POSIX waits are plain
//! `sem_wait`s, and a watchdog thread that polls the children's pidfds posts the semaphores
//! when one dies, so the waiter wakes and sees why. Shared semaphores are never destroyed, since
//! a peer may have died mid-wait; the page is just unmapped.
//!
//! **Run it**: `cargo run --release -p semaphore` (about a second), `-- --json`,
//! `-- --producers 4 --items 100000`.

mod ring;
mod sem;

use std::cell::{RefCell, UnsafeCell};
use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use labkit::child::{Peer, explain_break};
use labkit::exit::usage;
use labkit::measure::cpu_ns_per_op;
use labkit::names::{Kind, Reservation, reserve};
use labkit::pin::{PinGuard, Placement, pin_thread_to};
use labkit::report::format_ns;
use labkit::shared::SharedMemory;
use labkit::signals::Shutdown;
use labkit::{
    CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, Pin, PinArgs, Report, RoleArgs,
    Variant, Verdict,
};
use serde_json::json;

use ring::{Buffer, Ring, SLOTS};
use sem::{CondvarSem, PosixSem, Semaphore};

/// Items per producer by default, and with `--quick`; the most `--items` accepts.
const ITEMS: u64 = 20_000;
const QUICK_ITEMS: u64 = 500;
const MAX_ITEMS: u64 = 1 << 40;
/// Producers by default; the most `--producers` accepts (they are numbered in 16 bits).
const PRODUCERS: u64 = 2;
const MAX_PRODUCERS: u64 = 64;
/// Ping-pong round trips per variant, by default and with `--quick`.
const ROUND_TRIPS: u64 = 5_000;
const QUICK_ROUND_TRIPS: u64 = 300;
/// Alternating blocks (6 reach a 95% interval in one run), and with `--quick` (fewer: the
/// verdicts then say their lower confidence).
const BLOCKS: u64 = 6;
const QUICK_BLOCKS: u64 = 3;

#[derive(Parser, Debug)]
#[command(
    about = "Counting semaphores: POSIX unnamed and named between processes, Mutex+Condvar between threads.",
    after_help = labkit::examples!(
        "",
        " -- --producers 4 --items 100000",
        " -- --json | jq .checks"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    placing: PinArgs,

    /// Items per producer [default: 20000; --quick: 500; from 1 to 2^40].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_ITEMS))]
    items: Option<u64>,

    /// Producers [default: 2; from 1 to 64].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_PRODUCERS))]
    producers: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,

    /// This producer's number (internal).
    #[arg(long, hide = true)]
    producer: Option<u64>,

    /// Named semaphores to open: empty, full, lock (internal).
    #[arg(long, hide = true, num_args = 3)]
    named: Vec<String>,
}

/// What lives in the shared page: the unnamed semaphores and the ring. The semaphores are
/// `UnsafeCell`s: `sem_post`/`sem_wait`, here and in other processes, write their bytes while a
/// `&Shared` exists.
#[repr(C)]
struct Shared {
    empty: UnsafeCell<libc::sem_t>,
    full: UnsafeCell<libc::sem_t>,
    lock: UnsafeCell<libc::sem_t>,
    ping: UnsafeCell<libc::sem_t>,
    pong: UnsafeCell<libc::sem_t>,
    stop: AtomicU64,
    ring: Ring,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.role.role.is_some() {
        return labkit::finish(concat!(env!("CARGO_PKG_NAME"), " (child)"), run_child(args));
    }
    labkit::finish(env!("CARGO_PKG_NAME"), run(args))
}

/// The unnamed semaphores of the shared page, as this process sees them.
struct Unnamed {
    empty: PosixSem,
    full: PosixSem,
    lock: PosixSem,
    ping: PosixSem,
    pong: PosixSem,
}

impl Unnamed {
    /// # Safety
    /// `shared` must point to a `Shared` whose semaphores were initialised (see `run`), mapped
    /// for as long as the result is used.
    unsafe fn attach(shared: *mut Shared) -> Unnamed {
        // SAFETY: by the caller's contract; `UnsafeCell::get` takes the fields' addresses without
        // creating references to memory other processes change.
        unsafe {
            Unnamed {
                empty: PosixSem::attach((*shared).empty.get()),
                full: PosixSem::attach((*shared).full.get()),
                lock: PosixSem::attach((*shared).lock.get()),
                ping: PosixSem::attach((*shared).ping.get()),
                pong: PosixSem::attach((*shared).pong.get()),
            }
        }
    }
}

fn run(args: Args) -> Result<Outcome> {
    let shutdown = labkit::signals::install().context("install SIGINT/SIGTERM handlers")?;
    let common = &args.common;
    // [process, thread]: both, unless `--variant` picked one side.
    let sides = [
        common.wants(Variant::Process),
        common.wants(Variant::Thread),
    ];
    let (placements, left_out) = Placement::each(args.placing.pin)?;
    let items = args
        .items
        .unwrap_or(if common.quick { QUICK_ITEMS } else { ITEMS });
    let producers = args.producers.unwrap_or(PRODUCERS);
    let round_trips = if common.quick {
        QUICK_ROUND_TRIPS
    } else {
        ROUND_TRIPS
    };
    let blocks = if common.quick { QUICK_BLOCKS } else { BLOCKS };

    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    report.param("items", items);
    report.param("producers", producers);
    report.param("slots", SLOTS);
    report.param("blocks", blocks);
    report.param("pin", args.placing.pin.as_str());
    if let Some(why) = left_out {
        report.skip("wake-ups on two CPUs", why);
    }

    let memory = SharedMemory::create(std::mem::size_of::<Shared>()).context("shared memory")?;
    let shared: *mut Shared = memory.cast();
    // SAFETY: the mapping is fresh, zero-filled (a valid `Ring` and `stop`), large enough and
    // aligned (checked by `cast`), and unshared until the children start; the semaphores are
    // initialised in place and never moved.
    let unnamed = unsafe {
        PosixSem::init_shared((*shared).empty.get(), SLOTS as u32)?;
        PosixSem::init_shared((*shared).full.get(), 0)?;
        PosixSem::init_shared((*shared).lock.get(), 1)?;
        PosixSem::init_shared((*shared).ping.get(), 0)?;
        PosixSem::init_shared((*shared).pong.get(), 0)?;
        Unnamed::attach(shared)
    };
    // SAFETY: initialised above; only atomics and semaphores are used through it.
    let shared_ref: &Shared = unsafe { &*shared };

    for (pin, cpus) in placements {
        // The main thread is one side of every ping-pong; the pin is undone after the timing.
        let _pin = PinGuard::pin(cpus.main).context("sched_setaffinity (main thread)")?;
        let wake = Wake {
            round_trips,
            blocks,
            sides,
            pin,
            cpus,
        };
        measure_wake(&mut report, &memory, &unnamed, shared_ref, &wake, shutdown)?;
    }
    let exact = measure_buffer(
        &mut report,
        &memory,
        &unnamed,
        shared_ref,
        BufferSizes {
            producers,
            items,
            blocks,
            sides,
        },
        shutdown,
    )?;
    if sides == [true, true] {
        judge_claims(&mut report, exact);
    } else {
        report.summary = format!(
            "one side only: the bounded buffer {} every item once and in order",
            if exact { "moved" } else { "did NOT move" }
        );
    }
    common.note_one_side(&mut report);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    drop(unnamed);
    drop(memory); // Unmapped, never sem_destroy'ed: see the header.
    Ok(Outcome::of(&report))
}

/// Copies of the peers' exit descriptors (pidfds), for the watchdog thread.
fn exit_fds(peers: &RefCell<Vec<Peer>>) -> Result<Vec<OwnedFd>> {
    peers
        .borrow()
        .iter()
        .map(|p| {
            let fd = p
                .exit_fd()
                .context("pidfd_open is needed to watch the peers")?;
            fd.try_clone_to_owned().context("dup a pidfd")
        })
        .collect()
}

/// Wakes this process's POSIX-semaphore waiters when a peer dies or a shutdown signal arrives:
/// their waits are untimed (as fast as C's), so it takes a post for them to look up. It polls
/// the peers' pidfds (a normal exit is not a death) and the signal self-pipe, then sets `dead`
/// and posts `sems`. It stops when the returned pipe end is dropped.
fn start_watchdog<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    exits: Vec<OwnedFd>,
    shutdown: &'env Shutdown,
    sems: Vec<&'env PosixSem>,
    dead: &'env AtomicBool,
) -> Result<PipeWriter> {
    let (stop, stop_tx) = std::io::pipe().context("pipe")?;
    s.spawn(move || {
        if labkit::child::watch_peers(stop.as_fd(), shutdown, exits) {
            dead.store(true, Ordering::SeqCst);
            for sem in &sems {
                for _ in 0..16 {
                    let _ = sem.post();
                }
            }
        }
    });
    Ok(stop_tx)
}

/// The error for a broken wait (see `labkit::child::explain_break`).
fn broke(peers: &RefCell<Vec<Peer>>, err: std::io::Error) -> anyhow::Error {
    explain_break(&mut peers.borrow_mut(), err)
}

/// Step 1: post → wait → post back, processes and threads in alternating blocks.
/// Step 1's sizes, sides and placement.
struct Wake {
    round_trips: u64,
    blocks: u64,
    sides: [bool; 2],
    pin: Pin,
    cpus: Placement,
}

fn measure_wake(
    report: &mut Report,
    memory: &SharedMemory,
    unnamed: &Unnamed,
    shared: &Shared,
    w: &Wake,
    shutdown: &Shutdown,
) -> Result<()> {
    let (round_trips, blocks) = (w.round_trips, w.blocks);
    // A new pong for each placement: the last one's stop must not stop it.
    shared.stop.store(0, Ordering::SeqCst);
    // The pong process is started even with `--variant thread` (it then waits, untouched).
    let peers = RefCell::new(vec![Peer::spawn("pong", &[memory.fd()], w.cpus.peer, &[])?]);
    let dead = AtomicBool::new(false);
    let alive = || !dead.load(Ordering::Relaxed);
    let exits = exit_fds(&peers)?;
    let (t_ping, t_pong, t_stop) = (CondvarSem::new(0), CondvarSem::new(0), AtomicU64::new(0));
    let mut lat = [LatencyRecorder::new(), LatencyRecorder::new()];
    let mut cpu = [Duration::ZERO; 2];
    let pids = vec![peers.borrow()[0].pid()];
    std::thread::scope(|s| -> Result<()> {
        let _watchdog = start_watchdog(s, exits, shutdown, vec![&unnamed.pong], &dead)?;
        let peer_cpu = w.cpus.peer;
        let (ping, pong_back, stop) = (&t_ping, &t_pong, &t_stop);
        s.spawn(move || {
            pin_thread_to(peer_cpu);
            pong(ping, pong_back, stop, &|| true)
        });
        let result = (|| -> Result<()> {
            for block in 0..=blocks {
                let n = if block == 0 {
                    round_trips / 10
                } else {
                    round_trips / blocks
                };
                for (i, (ping, pong)) in [
                    (
                        &unnamed.ping as &dyn Semaphore,
                        &unnamed.pong as &dyn Semaphore,
                    ),
                    (&t_ping, &t_pong),
                ]
                .into_iter()
                .enumerate()
                .filter(|(i, _)| w.sides[*i])
                {
                    let watch: &[_] = if i == 0 { &pids } else { &[] };
                    let cpu_before = CpuClock::now(watch)?;
                    for _ in 0..n {
                        let start = Instant::now();
                        ping.post()?;
                        pong.wait(&alive).map_err(|e| broke(&peers, e))?;
                        if block > 0 {
                            lat[i].record(start.elapsed());
                        }
                    }
                    if block > 0 {
                        cpu[i] += CpuClock::since(cpu_before, watch)?;
                    }
                }
            }
            Ok(())
        })();
        // Stop both pongs whatever happened.
        t_stop.store(1, Ordering::SeqCst);
        let _ = t_ping.post();
        shared.stop.store(1, Ordering::SeqCst);
        let _ = unnamed.ping.post();
        result
    })?;
    for p in peers.into_inner() {
        p.finish()?;
    }
    for (i, (variant, mechanism)) in [
        (Variant::Process, "sem-pshared"),
        (Variant::Thread, "condvar-sem"),
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| w.sides[*i])
    {
        let per_op = cpu_ns_per_op(cpu[i], lat[i].len());
        let config = json!({ "pin": w.pin.as_str() });
        report.measure(Measurement::histogram(
            "round_trip",
            variant,
            mechanism,
            config.clone(),
            &lat[i],
            per_op,
        ));
        report.measure(Measurement::value(
            "wake_up",
            variant,
            mechanism,
            config,
            "ns",
            lat[i].p50() as f64 / 2.0,
            None,
        ));
    }
    Ok(())
}

/// The answering side of step 1: wait for a ping, post a pong, until told to stop.
fn pong(
    ping: &dyn Semaphore,
    pong: &dyn Semaphore,
    stop: &AtomicU64,
    alive: &dyn Fn() -> bool,
) -> std::io::Result<u64> {
    let mut n = 0;
    loop {
        ping.wait(alive)?;
        if stop.load(Ordering::SeqCst) == 1 {
            return Ok(n);
        }
        pong.post()?;
        n += 1;
    }
}

/// One bounded-buffer run.
struct Run {
    elapsed: Duration,
    cpu: Duration,
    wrong: u64,
}

/// Step 2's sizes and sides.
struct BufferSizes {
    producers: u64,
    items: u64,
    blocks: u64,
    sides: [bool; 2],
}

/// Step 2: the bounded buffer, three ways, alternating blocks.
fn measure_buffer(
    report: &mut Report,
    memory: &SharedMemory,
    unnamed: &Unnamed,
    shared: &Shared,
    b: BufferSizes,
    shutdown: &Shutdown,
) -> Result<bool> {
    let BufferSizes {
        producers,
        items,
        blocks,
        sides,
    } = b;
    let ways = [
        (Variant::Process, "sem-pshared"),
        (Variant::Process, "sem-named"),
        (Variant::Thread, "condvar-sem"),
    ];
    let mut runs: [Vec<Run>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..blocks {
        shutdown.check()?;
        if sides[0] {
            runs[0].push(buffer_processes(
                memory, unnamed, None, shared, producers, items, shutdown,
            )?);
            runs[1].push(buffer_named(memory, shared, producers, items, shutdown)?);
        }
        if sides[1] {
            runs[2].push(buffer_threads(producers, items, shutdown)?);
        }
    }
    let total = producers * items * blocks;
    let mut lines = Vec::new();
    let mut exact = true;
    for (i, (variant, mechanism)) in ways
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !runs[*i].is_empty())
    {
        let elapsed: Duration = runs[i].iter().map(|r| r.elapsed).sum();
        let cpu: Duration = runs[i].iter().map(|r| r.cpu).sum();
        let wrong: u64 = runs[i].iter().map(|r| r.wrong).sum();
        exact &= wrong == 0;
        let config = json!({ "producers": producers, "items": items, "slots": SLOTS });
        let rate = total as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6;
        report.measure(Measurement::value(
            "items",
            variant,
            mechanism,
            config,
            "M/s",
            rate,
            cpu_ns_per_op(cpu, total),
        ));
        lines.push(format!(
            "{mechanism}: {} of {total} in order",
            total - wrong
        ));
    }
    report.check(
        "every item was consumed exactly once, in order per producer",
        exact,
        format!(
            "{producers} producers x {items} items, {blocks} blocks per way; {}",
            lines.join("; ")
        ),
    );
    Ok(exact)
}

/// Producers as child processes, on the unnamed semaphores, or on the `named` ones.
fn buffer_processes(
    memory: &SharedMemory,
    unnamed: &Unnamed,
    named: Option<(&[String; 3], [&PosixSem; 3], &mut [Reservation])>,
    shared: &Shared,
    producers: u64,
    items: u64,
    shutdown: &Shutdown,
) -> Result<Run> {
    let (mut ready_rx, ready_tx) = std::io::pipe().context("pipe")?;
    let (go_rx, go_tx) = std::io::pipe().context("pipe")?;
    let mut spawned = Vec::new();
    for p in 0..producers {
        let mut extra = vec![
            "--producer".to_owned(),
            p.to_string(),
            "--items".to_owned(),
            items.to_string(),
        ];
        if let Some((names, _, _)) = &named {
            extra.push("--named".to_owned());
            extra.extend(names.iter().cloned());
        }
        spawned.push(Peer::spawn(
            "produce",
            &[memory.fd(), ready_tx.as_fd(), go_rx.as_fd()],
            None,
            &extra,
        )?);
    }
    drop((ready_tx, go_rx)); // The children have them; ours would hide their deaths.
    let peers = RefCell::new(spawned);
    for _ in 0..producers {
        let mut b = [0u8; 1];
        if ready_rx.read_exact(&mut b).is_err() {
            return Err(broke(
                &peers,
                std::io::Error::other("a producer ended before it was ready"),
            ));
        }
    }
    let (empty, full, lock): (&PosixSem, &PosixSem, &PosixSem) = match &named {
        Some((_, [e, f, l], _)) => (e, f, l),
        None => (&unnamed.empty, &unnamed.full, &unnamed.lock),
    };
    // Every producer has the named semaphores open: the names have done their job.
    if let Some((_, _, reservations)) = named {
        for r in reservations.iter_mut() {
            r.unlink().context("sem_unlink")?;
        }
    }
    let pids: Vec<_> = peers.borrow().iter().map(Peer::pid).collect();
    let cpu_before = CpuClock::now(&pids)?;
    let start = Instant::now();
    drop(go_tx); // EOF on `go`: every producer starts at once.
    let buffer = Buffer {
        empty,
        full,
        lock,
        ring: &shared.ring,
    };
    let dead = AtomicBool::new(false);
    let alive = || !dead.load(Ordering::Relaxed);
    let exits = exit_fds(&peers)?;
    let wrong = std::thread::scope(|s| -> Result<u64> {
        let _watchdog = start_watchdog(s, exits, shutdown, vec![full], &dead)?;
        buffer
            .consume(producers, producers * items, &alive)
            .map_err(|e| broke(&peers, e))
    })?;
    let elapsed = start.elapsed();
    for p in peers.into_inner() {
        p.finish()?;
    }
    let cpu = CpuClock::since(cpu_before, &[])?; // Reaped: their time is in RUSAGE_CHILDREN.
    Ok(Run {
        elapsed,
        cpu,
        wrong,
    })
}

/// Producers as child processes on named semaphores, created here for this run.
fn buffer_named(
    memory: &SharedMemory,
    shared: &Shared,
    producers: u64,
    items: u64,
    shutdown: &Shutdown,
) -> Result<Run> {
    let mut reservations = Vec::new();
    let mut sems = Vec::new();
    for value in [SLOTS as u32, 0, 1] {
        let mut r = reserve(Kind::Sem)?;
        sems.push(PosixSem::create_named(r.name(), value)?);
        r.mark_created();
        reservations.push(r);
    }
    let names: [String; 3] = std::array::from_fn(|i| reservations[i].name().to_owned());
    let [e, f, l] = [&sems[0], &sems[1], &sems[2]];
    // SAFETY: the unnamed semaphores are not used in this run; attaching only builds handles.
    let unnamed = unsafe { Unnamed::attach(std::ptr::from_ref(shared).cast_mut()) };
    buffer_processes(
        memory,
        &unnamed,
        Some((&names, [e, f, l], &mut reservations)),
        shared,
        producers,
        items,
        shutdown,
    )
}

/// Producers as threads, on `Condvar` semaphores.
fn buffer_threads(producers: u64, items: u64, shutdown: &Shutdown) -> Result<Run> {
    let (empty, full, lock) = (
        CondvarSem::new(SLOTS as u64),
        CondvarSem::new(0),
        CondvarSem::new(1),
    );
    let ring = Ring::new();
    let buffer = Buffer {
        empty: &empty,
        full: &full,
        lock: &lock,
        ring: &ring,
    };
    let cpu_before = CpuClock::now(&[])?;
    let start = Instant::now();
    // "Alive" here means "not interrupted": a Ctrl-C stops the consumer within 4096 items, and
    // producers blocked on a full buffer within one recheck.
    let going = || shutdown.check().is_ok();
    let wrong = std::thread::scope(|s| {
        for p in 0..producers {
            let (buffer, going) = (&buffer, &going);
            s.spawn(move || buffer.produce(p, items, going));
        }
        buffer.consume(producers, producers * items, &going)
    });
    shutdown.check()?;
    let wrong = wrong?;
    Ok(Run {
        elapsed: start.elapsed(),
        cpu: CpuClock::since(cpu_before, &[])?,
        wrong,
    })
}

/// Step 3: the claim.
fn judge_claims(report: &mut Report, exact: bool) {
    let rate = |k: &str| report.find(k).and_then(|m| m.value).map_or(0.0, |v| v);
    // Post-to-wake latency per placement: "on one CPU 1.9 us (processes) vs 2.0 us (threads)".
    let wake = |pin: &str, variant: Variant| {
        report
            .measurements
            .iter()
            .find(|m| {
                m.name == "wake_up"
                    && m.variant == variant
                    && m.config.get("pin").and_then(|p| p.as_str()) == Some(pin)
            })
            .and_then(|m| m.value)
            .map(format_ns)
    };
    let wakes: Vec<String> = ["same", "split", "none"]
        .iter()
        .filter_map(|pin| {
            let (p, t) = (wake(pin, Variant::Process)?, wake(pin, Variant::Thread)?);
            Some(format!(
                "{} {p} (processes) vs {t} (threads)",
                labkit::report::placement_text(pin)
            ))
        })
        .collect();
    let wakes = wakes.join(", ");
    let evidence = format!(
        "a 64-slot bounded buffer {}, between processes on unnamed and named POSIX semaphores \
         ({:.2} and {:.2} M items/s) and between threads on a Mutex+Condvar semaphore ({:.2} \
         M/s); post-to-wake latency: {wakes}",
        if exact {
            "lost, repeated and reordered nothing"
        } else {
            "LOST, repeated or reordered items (see the checks)"
        },
        rate("items/process/sem-pshared"),
        rate("items/process/sem-named"),
        rate("items/thread/condvar-sem")
    );
    report.claim_observed(
        "sync.primitives",
        if exact {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        evidence,
    );
    report.summary = format!(
        "a bounded buffer on counting semaphores, processes and threads: every item once and in \
         order; wake-up (sem_t between processes, Condvar between threads): {wakes}{}",
        if report.passed() {
            "."
        } else {
            "; a check FAILED."
        }
    );
}

/// The children: a producer, or the answering side of the ping-pong.
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let memory = SharedMemory::open(fds.next().context("no shared memory fd passed")?)?;
    let shared: *mut Shared = memory.cast();
    // SAFETY: the parent initialised the `Shared` in this mapping before starting us and keeps
    // it mapped; only semaphores and atomics are used through it.
    let (unnamed, shared_ref) = unsafe { (Unnamed::attach(shared), &*shared) };
    match args.role.role.as_deref().unwrap_or_default() {
        "pong" => {
            // Our parent's death kills us (PR_SET_PDEATHSIG): no other liveness check needed.
            pong(&unnamed.ping, &unnamed.pong, &shared_ref.stop, &|| true).context("pong")?;
        }
        "produce" => {
            let mut ready = PipeWriter::from(fds.next().context("no ready fd passed")?);
            let mut go = PipeReader::from(fds.next().context("no go fd passed")?);
            let named = match args.named.as_slice() {
                [] => None,
                [e, f, l] => Some([
                    PosixSem::open_named(e)?,
                    PosixSem::open_named(f)?,
                    PosixSem::open_named(l)?,
                ]),
                other => bail!("--named takes three names, got {}", other.len()),
            };
            let (empty, full, lock) = match &named {
                Some([e, f, l]) => (e, f, l),
                None => (&unnamed.empty, &unnamed.full, &unnamed.lock),
            };
            ready.write_all(b"!").context("say ready")?;
            // Close it now: if a sibling dies before saying ready, our open copy would keep the
            // parent from seeing EOF.
            drop(ready);
            let _ = go.read(&mut [0u8; 1]); // EOF: the parent started everyone.
            let buffer = Buffer {
                empty,
                full,
                lock,
                ring: &shared_ref.ring,
            };
            let producer = args.producer.context("--producer is required")?;
            buffer
                .produce(producer, args.items.unwrap_or(ITEMS), &|| true)
                .context("produce")?;
        }
        other => return Err(usage(format!("unknown role `{other}`"))),
    }
    Ok(Outcome::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim follows what was observed: items lost, repeated or reordered make it not
    /// hold, and the evidence says so.
    #[test]
    fn the_claim_follows_what_was_observed() {
        for exact in [true, false] {
            let mut report = Report::new(env!("CARGO_PKG_NAME"));
            judge_claims(&mut report, exact);
            let c = &report.claims[0];
            let expected = if exact {
                Verdict::Holds
            } else {
                Verdict::DoesNotHold
            };
            assert_eq!(c.verdict, expected);
            assert_eq!(c.evidence.contains("LOST"), !exact, "{}", c.evidence);
        }
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
