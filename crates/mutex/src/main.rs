//! # mutex: one lock for threads, another for processes, and what happens when a holder dies
//!
//! **Claims** (from the seed, checked on this machine):
//! * `sync.primitives`: locks coordinate access to shared data (here: exact counts under
//!   contention, for threads with `std::sync::Mutex` and for processes with a pthread mutex);
//! * `usecase.isolation`: a process that dies holding a lock is detected and its half-done
//!   update repaired (`EOWNERDEAD`), where a thread that panics only poisons its `Mutex`.
//!
//! Why not `std::sync::Mutex` in shared memory? Its futex is process-private: a waiter in another
//! process would never be woken. Across processes the lock is a `pthread_mutex_t` made
//! `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST`, initialised in place in a `memfd`
//! mapping and never moved.
//!
//! **Steps**
//! 1. [`measure_uncontended`]: lock + unlock with nobody else around, `std::sync::Mutex` vs the
//!    robust process-shared mutex, in batches, alternating.
//! 2. [`measure_contended`]: 1, 2 and 4 parties (threads, or re-executed processes) each add
//!    `--increments` to one counter under the lock, alternating blocks; the count must be exact.
//! 3. [`show_owner_death`]: a child takes the robust mutex, starts an update, says so, and is
//!    SIGKILLed; our next lock gets `EOWNERDEAD`, we finish the update, call
//!    `pthread_mutex_consistent`, and go on. Then the other path: unlocking without
//!    `consistent` leaves the mutex `ENOTRECOVERABLE`.
//! 4. [`show_poisoning`]: a thread panics holding a `std::sync::Mutex`: the lock is poisoned,
//!    the next `lock` returns `PoisonError`, and `into_inner` recovers the data.
//! 5. [`judge_claims`].
//!
//! **Run it**: `cargo run --release -p mutex` (about two seconds), `-- --json`,
//! `-- --parties 8 --increments 100000`.

mod robust;

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use labkit::child::Peer;
use labkit::exit::usage;
use labkit::measure::cpu_ns_per_op;
use labkit::report::format_ns;
use labkit::shared::SharedMemory;
use labkit::signals::Shutdown;
use labkit::{
    CommonArgs, CpuClock, LatencyRecorder, Measurement, Outcome, Report, RoleArgs, Variant, Verdict,
};
use nix::sys::signal::{Signal, kill};
use serde_json::json;

use robust::{Guarded, Locked};

/// Increments per party by default, and with `--quick`; the most `--increments` accepts.
const INCREMENTS: u64 = 100_000;
const QUICK_INCREMENTS: u64 = 1_000;
const MAX_INCREMENTS: u64 = 100_000_000;
/// The most parties by default, and the most `--parties` accepts.
const PARTIES: u64 = 4;
const MAX_PARTIES: u64 = 64;
/// Lock + unlock pairs per timed batch, and batches per block, in the uncontended step.
const BATCH: u64 = 1_000;
const BATCHES: u64 = 40;
/// Alternating blocks (6 reach a 95% interval in one run), and with `--quick` (fewer: the
/// verdicts then say their lower confidence).
const BLOCKS: u64 = 6;
const QUICK_BLOCKS: u64 = 3;
/// Waits that should end at once; reaching one means something is wrong, not slow.
const HANG_GUARD: Duration = Duration::from_secs(30);
/// The "ready" message a child sends before it waits for the start.
const READY: u64 = u64::MAX;

#[derive(Parser, Debug)]
#[command(
    about = "std::sync::Mutex between threads vs a robust process-shared pthread mutex between processes.",
    after_help = labkit::examples!(
        "",
        " -- --parties 8 --increments 100000",
        " -- --json | jq .claims"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    /// Increments per party [default: 100000; --quick: 1000; from 1 to 100000000].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_INCREMENTS))]
    increments: Option<u64>,

    /// Up to this many parties, doubling from 1 [default: 4; from 1 to 64].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_PARTIES))]
    parties: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,

    /// Which shared mutex a `hold` child takes (internal).
    #[arg(long, hide = true)]
    which: Option<String>,
}

/// What lives in the shared page: three independent robust mutexes with their data.
#[repr(C)]
struct Shared {
    /// The counter of steps 1 and 2.
    counter: Guarded,
    /// Step 3: the mutex whose owner dies and which is repaired.
    doomed: Guarded,
    /// Step 3: the mutex whose owner dies and which is never made consistent.
    unrecoverable: Guarded,
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
    // [process, thread]: both, unless `--variant` picked one side.
    let sides = [
        common.wants(Variant::Process),
        common.wants(Variant::Thread),
    ];
    let increments = args.increments.unwrap_or(if common.quick {
        QUICK_INCREMENTS
    } else {
        INCREMENTS
    });
    let max_parties = args.parties.unwrap_or(PARTIES);
    let blocks = if common.quick { QUICK_BLOCKS } else { BLOCKS };

    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    report.param("increments", increments);
    report.param("parties", max_parties);
    report.param("blocks", blocks);

    let memory = SharedMemory::create(std::mem::size_of::<Shared>()).context("shared memory")?;
    let shared: *mut Shared = memory.cast();
    // SAFETY: the mapping is fresh, large enough and page-aligned (checked by `cast`); nobody
    // else has it yet; it stays mapped, unmoved, until `memory` is dropped at the end of `run`.
    let shared: &Shared = unsafe {
        for g in [
            &raw mut (*shared).counter,
            &raw mut (*shared).doomed,
            &raw mut (*shared).unrecoverable,
        ] {
            Guarded::init(g).context("initialise a robust process-shared mutex")?;
        }
        &*shared
    };

    measure_uncontended(&mut report, &shared.counter, sides, blocks, shutdown)?;
    let exact = measure_contended(
        &mut report,
        &memory,
        &shared.counter,
        Parties {
            increments,
            max: max_parties,
            sides,
        },
        blocks,
        shutdown,
    )?;
    // Owner death is the process side's lesson, poisoning the thread side's.
    let death = if sides[0] {
        Some(show_owner_death(&mut report, &memory, shared)?)
    } else {
        None
    };
    let poison = sides[1].then(|| show_poisoning(&mut report));
    if let (Some(death), Some(poison)) = (death, poison) {
        judge_claims(&mut report, &exact, &death, &poison);
    } else {
        report.summary = format!("one side only: {}", exact.text);
    }
    common.note_one_side(&mut report);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    // The mutexes are not destroyed: a peer may have died holding one. Unmapping is enough.
    drop(memory);
    Ok(Outcome::of(&report))
}

/// Step 1: lock + unlock alone, in timed batches, alternating the two locks.
fn measure_uncontended(
    report: &mut Report,
    robust: &Guarded,
    sides: [bool; 2],
    blocks: u64,
    shutdown: &Shutdown,
) -> Result<()> {
    let std_mutex = Mutex::new(0u64);
    let (mut std_ns, mut robust_ns) = (LatencyRecorder::new(), LatencyRecorder::new());
    for _ in 0..blocks {
        shutdown.check()?;
        for _ in 0..BATCHES {
            if sides[1] {
                let start = Instant::now();
                for _ in 0..BATCH {
                    *std_mutex.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                }
                std_ns.record_ns(start.elapsed().as_nanos() as u64 / BATCH);
            }
            if sides[0] {
                let start = Instant::now();
                for _ in 0..BATCH {
                    robust.lock(HANG_GUARD)?;
                    robust.unlock()?;
                }
                robust_ns.record_ns(start.elapsed().as_nanos() as u64 / BATCH);
            }
        }
    }
    let config = json!({ "parties": 1, "batch": BATCH });
    for (run, variant, mechanism, lat) in [
        (sides[1], Variant::Thread, "std-mutex", &std_ns),
        (sides[0], Variant::Process, "pthread-robust", &robust_ns),
    ] {
        if run {
            let m = Measurement::histogram(
                "lock_unlock",
                variant,
                mechanism,
                config.clone(),
                lat,
                None,
            );
            report.measure(m);
        }
    }
    Ok(())
}

/// One contended run's result.
struct Contended {
    elapsed: Duration,
    cpu: Duration,
    exact: bool,
}

/// Step 2: parties adding to one counter, processes and threads in alternating blocks.
/// Step 2's sizes: increments per party, up to how many parties, and which sides run.
struct Parties {
    increments: u64,
    max: u64,
    sides: [bool; 2],
}

fn measure_contended(
    report: &mut Report,
    memory: &SharedMemory,
    counter: &Guarded,
    p: Parties,
    blocks: u64,
    shutdown: &'static Shutdown,
) -> Result<Seen> {
    let increments = p.increments;
    let mut all_exact = true;
    let mut lines = Vec::new();
    let mut parties = 1;
    while parties <= p.max {
        let mut runs: [Vec<Contended>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..blocks {
            shutdown.check()?;
            if p.sides[0] {
                runs[0].push(contend_processes(
                    memory, counter, parties, increments, shutdown,
                )?);
            }
            if p.sides[1] {
                runs[1].push(contend_threads(parties, increments, shutdown)?);
            }
        }
        let ops = parties * increments * blocks;
        for (variant, mechanism, runs) in [
            (Variant::Process, "pthread-robust", &runs[0]),
            (Variant::Thread, "std-mutex", &runs[1]),
        ]
        .into_iter()
        .filter(|(_, _, runs)| !runs.is_empty())
        {
            let elapsed: Duration = runs.iter().map(|r| r.elapsed).sum();
            let cpu: Duration = runs.iter().map(|r| r.cpu).sum();
            let exact = runs.iter().all(|r| r.exact);
            all_exact &= exact;
            let rate = ops as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6;
            let config = json!({ "parties": parties, "increments": increments });
            report.measure(Measurement::value(
                "increments",
                variant,
                mechanism,
                config,
                "M/s",
                rate,
                cpu_ns_per_op(cpu, ops),
            ));
            let who = match (variant, parties) {
                (Variant::Process, 1) => "process",
                (Variant::Process, _) => "processes",
                (_, 1) => "thread",
                _ => "threads",
            };
            lines.push(format!(
                "{parties} {who}: {}",
                if exact { "exact" } else { "NOT exact" }
            ));
        }
        parties *= 2;
    }
    let seen = Seen {
        ok: all_exact,
        text: format!(
            "each party added {increments} under the lock, every block; {}",
            lines.join(", ")
        ),
    };
    report.check(
        "every count was exact under contention",
        seen.ok,
        &seen.text,
    );
    Ok(seen)
}

/// An observation: whether it went as the lesson says, and what was seen, in words.
struct Seen {
    ok: bool,
    text: String,
}

/// `parties` re-executed processes add `increments` each to the shared counter.
fn contend_processes(
    memory: &SharedMemory,
    counter: &Guarded,
    parties: u64,
    increments: u64,
    shutdown: &Shutdown,
) -> Result<Contended> {
    let before = counter.counter(HANG_GUARD)?;
    let (go_rx, go_tx) = std::io::pipe().context("pipe")?;
    let (mut done_rx, done_tx) = std::io::pipe().context("pipe")?;
    let mut peers = Vec::new();
    for _ in 0..parties {
        let fds = [memory.fd(), go_rx.as_fd(), done_tx.as_fd()];
        let extra = ["--increments".to_owned(), increments.to_string()];
        peers.push(Peer::spawn("increment", &fds, None, &extra)?);
    }
    // The children have their copies; ours would keep `done` open past their deaths.
    drop((go_rx, done_tx));
    read_messages(&mut done_rx, parties, &mut peers, "get ready", shutdown)?;
    let pids: Vec<_> = peers.iter().map(Peer::pid).collect();
    let cpu_before = CpuClock::now(&pids)?;
    let start = Instant::now();
    drop(go_tx); // EOF on `go`: every child starts at once.
    let recovered = read_messages(&mut done_rx, parties, &mut peers, "finish", shutdown)?;
    let elapsed = start.elapsed();
    for peer in peers {
        peer.finish()?;
    }
    // Reaped now, the children's CPU time is in RUSAGE_CHILDREN: read it with no live pids
    // (a child that has exited has no CPU clock left to read).
    let cpu = CpuClock::since(cpu_before, &[])?;
    if recovered.iter().any(|&r| r > 0) {
        bail!("a child found a dead owner during a healthy run");
    }
    let after = counter.counter(HANG_GUARD)?;
    Ok(Contended {
        elapsed,
        cpu,
        exact: after - before == parties * increments,
    })
}

/// Reads one 8-byte message per peer. A peer that dies first, or a shutdown signal, wakes the
/// wait at once (each peer's exit descriptor and the signal self-pipe are polled beside `rx`).
fn read_messages(
    rx: &mut PipeReader,
    n: u64,
    peers: &mut [Peer],
    what: &str,
    shutdown: &Shutdown,
) -> Result<Vec<u64>> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut out = Vec::new();
    while (out.len() as u64) < n {
        let (readable, exited) = {
            let mut fds = vec![
                PollFd::new(rx.as_fd(), PollFlags::POLLIN),
                PollFd::new(shutdown.wake_fd(), PollFlags::POLLIN),
            ];
            fds.extend(
                peers
                    .iter()
                    // A child already reaped has said all it will: its pidfd would stay readable.
                    .filter(|p| !p.ended())
                    .filter_map(Peer::exit_fd)
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::from(u16::MAX)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds[2..].iter().any(ready))
        };
        shutdown.check()?;
        if readable {
            let mut b = [0u8; 8];
            if rx.read_exact(&mut b).is_ok() {
                out.push(u64::from_le_bytes(b));
                continue;
            }
        }
        if readable || exited {
            // A child exited, or every one closed the pipe (EOF): then each is exiting, though
            // its pipe closes a moment before it can be reaped, so wait for that moment.
            let limit = if readable { HANG_GUARD } else { Duration::ZERO };
            for peer in peers.iter_mut() {
                if let Some(status) = peer.wait_for(limit)? {
                    if !status.success() {
                        return Err(peer.death(format!("before it could {what}")));
                    }
                }
            }
            if readable {
                bail!("every child closed the pipe before it could {what}");
            }
        }
    }
    Ok(out)
}

/// `parties` threads add `increments` each to a `std::sync::Mutex<u64>`.
fn contend_threads(
    parties: u64,
    increments: u64,
    shutdown: &'static Shutdown,
) -> Result<Contended> {
    let counter = Arc::new(Mutex::new(0u64));
    let start_line = Arc::new(Barrier::new(parties as usize + 1));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let handles: Vec<_> = (0..parties)
        .map(|_| {
            let (counter, start_line, done) = (
                Arc::clone(&counter),
                Arc::clone(&start_line),
                done_tx.clone(),
            );
            std::thread::spawn(move || {
                start_line.wait();
                for i in 0..increments {
                    // A Ctrl-C stops the count within 4096 increments.
                    if i % 4096 == 0 && shutdown.requested().is_some() {
                        break;
                    }
                    *counter.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                }
                let _ = done.send(());
            })
        })
        .collect();
    let cpu_before = CpuClock::now(&[])?;
    start_line.wait();
    let start = Instant::now();
    for _ in 0..parties {
        done_rx.recv().context("a counting thread died")?;
    }
    let elapsed = start.elapsed();
    let cpu = CpuClock::since(cpu_before, &[])?;
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a counting thread panicked"))?;
    }
    shutdown.check()?;
    let total = *counter.lock().unwrap_or_else(|p| p.into_inner());
    Ok(Contended {
        elapsed,
        cpu,
        exact: total == parties * increments,
    })
}

/// What step 3 observed.
struct Death {
    owner_died_seen: bool,
    repaired: bool,
    recovered: bool,
    unrecoverable_seen: bool,
    /// What was seen, in words.
    seen: String,
}

/// A child takes `which` of the shared mutexes, starts an update, says so, and waits to die.
fn child_holding(memory: &SharedMemory, which: &str) -> Result<Peer> {
    let (mut ready_rx, ready_tx) = std::io::pipe().context("pipe")?;
    let extra = ["--which".to_owned(), which.to_owned()];
    let mut peer = Peer::spawn("hold", &[memory.fd(), ready_tx.as_fd()], None, &extra)?;
    drop(ready_tx);
    let mut b = [0u8; 1];
    if ready_rx.read_exact(&mut b).is_err() {
        return Err(peer.death("before it took the lock"));
    }
    Ok(peer)
}

/// Step 3: a holder dies; its lock is recovered, or, without `consistent`, lost for good.
fn show_owner_death(report: &mut Report, memory: &SharedMemory, shared: &Shared) -> Result<Death> {
    // The child holds `doomed`, mid-update, when we kill it.
    let mut peer = child_holding(memory, "doomed")?;
    kill(peer.pid(), Signal::SIGKILL).context("kill the holder")?;
    let status = peer.wait()?;
    let first = shared.doomed.lock(HANG_GUARD)?;
    let owner_died_seen = first == Locked::OwnerDied;
    let repaired = owner_died_seen && shared.doomed.repair();
    if owner_died_seen {
        shared.doomed.make_consistent()?;
    }
    shared.doomed.unlock()?;
    let recovered =
        shared.doomed.lock(HANG_GUARD)? == Locked::Clean && shared.doomed.unlock().is_ok();
    let value = shared.doomed.counter(HANG_GUARD)?;
    let repaired_seen = format!(
        "the holder {} mid-update; our lock returned {}; we finished its update (counter now \
         {value}), called pthread_mutex_consistent, and the next lock was {}",
        labkit::child::describe(status),
        if owner_died_seen {
            "EOWNERDEAD"
        } else {
            "no EOWNERDEAD"
        },
        if recovered { "clean" } else { "NOT clean" }
    );
    report.check(
        "a robust mutex whose owner died is handed on with EOWNERDEAD, and repaired",
        owner_died_seen && repaired && recovered && value == 1,
        &repaired_seen,
    );

    // The same death, but we unlock without making it consistent.
    let mut peer = child_holding(memory, "unrecoverable")?;
    kill(peer.pid(), Signal::SIGKILL).context("kill the holder")?;
    peer.wait()?;
    let first = shared.unrecoverable.lock(HANG_GUARD)?;
    shared.unrecoverable.unlock()?;
    let second = shared.unrecoverable.lock(HANG_GUARD);
    let unrecoverable_seen = first == Locked::OwnerDied
        && matches!(&second, Err(e) if e.to_string().contains(&std::io::Error::from_raw_os_error(libc::ENOTRECOVERABLE).to_string()));
    let unrecoverable_text = format!(
        "unlocked at once after EOWNERDEAD, the next lock returned {}",
        match &second {
            Ok(l) => format!("{l:?}"),
            Err(e) => e.to_string(),
        }
    );
    report.check(
        "unlocking without pthread_mutex_consistent leaves the mutex ENOTRECOVERABLE",
        unrecoverable_seen,
        &unrecoverable_text,
    );
    Ok(Death {
        owner_died_seen,
        repaired,
        recovered,
        unrecoverable_seen,
        seen: format!("{repaired_seen}; {unrecoverable_text}"),
    })
}

/// Step 4: the thread analogue: a panic poisons the `Mutex`.
fn show_poisoning(report: &mut Report) -> Seen {
    let data = Mutex::new(vec![1, 2, 3]);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // This panic is on purpose: keep stderr clean.
    let panicked = std::thread::scope(|s| {
        s.spawn(|| {
            let mut guard = data.lock().unwrap_or_else(|p| p.into_inner());
            guard.push(4); // Half an update…
            panic!("on purpose, holding the lock");
        })
        .join()
        .is_err()
    });
    std::panic::set_hook(previous);
    let (poisoned, recovered) = match data.lock() {
        Ok(_) => (false, Vec::new()),
        Err(poison) => (true, poison.into_inner().clone()),
    };
    let seen = Seen {
        ok: panicked && poisoned && recovered == [1, 2, 3, 4],
        text: format!(
            "a thread {} holding a Mutex; the next lock returned {}{}",
            if panicked {
                "panicked"
            } else {
                "did NOT panic"
            },
            if poisoned { "Err(PoisonError)" } else { "Ok" },
            if poisoned {
                format!(
                    "; PoisonError::into_inner still gave the data, {recovered:?}, half-updated, \
                     for us to check"
                )
            } else {
                String::new()
            }
        ),
    };
    report.check(
        "a thread that panics holding a Mutex poisons it",
        seen.ok,
        &seen.text,
    );
    seen
}

/// Step 5: the claims, each decided by what steps 2 to 4 saw, its evidence what they saw.
fn judge_claims(report: &mut Report, exact: &Seen, death: &Death, poison: &Seen) {
    let key = |k: &str| {
        report
            .find(k)
            .and_then(|m| m.p50)
            .map_or_else(|| "-".to_owned(), |v| format_ns(v as f64))
    };
    let (std_ns, robust_ns) = (
        key("lock_unlock/thread/std-mutex"),
        key("lock_unlock/process/pthread-robust"),
    );
    let verdict = |ok: bool| {
        if ok {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        }
    };
    report.claim_observed(
        "sync.primitives",
        verdict(exact.ok),
        format!(
            "threads under std::sync::Mutex and processes under a robust process-shared pthread \
             mutex in shared memory: {}",
            exact.text
        ),
    );
    let isolated =
        death.owner_died_seen && death.repaired && death.recovered && death.unrecoverable_seen;
    report.claim_observed(
        "usecase.isolation",
        verdict(isolated && poison.ok),
        format!(
            "a process killed holding the lock: {}; a thread: {}",
            death.seen, poison.text
        ),
    );
    report.summary = format!(
        "exact counts under contention for threads and processes; uncontended lock+unlock {std_ns} \
         (std Mutex) vs {robust_ns} (robust pthread mutex); a dead holder was recovered via \
         EOWNERDEAD{}",
        if report.passed() {
            "."
        } else {
            "; a check FAILED."
        }
    );
}

/// The children: a counting party, or a holder that waits to be killed.
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let memory = SharedMemory::open(fds.next().context("no shared memory fd passed")?)?;
    // SAFETY: the parent initialised a `Shared` at the start of this mapping before starting us,
    // and keeps it mapped and unmoved; the mutexes make every access to the data safe.
    let shared: &Shared = unsafe { &*memory.cast::<Shared>() };
    match args.role.role.as_deref().unwrap_or_default() {
        "increment" => {
            let mut go = PipeReader::from(fds.next().context("no go fd passed")?);
            let mut done = PipeWriter::from(fds.next().context("no done fd passed")?);
            done.write_all(&READY.to_le_bytes()).context("say ready")?;
            // Blocks until the parent closes its end: everyone starts together.
            let _ = go.read(&mut [0u8; 1]);
            let recovered = shared
                .counter
                .increment(args.increments.unwrap_or(INCREMENTS), HANG_GUARD)?;
            done.write_all(&recovered.to_le_bytes())
                .context("say done")?;
        }
        "hold" => {
            let mut ready = PipeWriter::from(fds.next().context("no ready fd passed")?);
            let which = match args.which.as_deref() {
                Some("doomed") => &shared.doomed,
                Some("unrecoverable") => &shared.unrecoverable,
                other => return Err(usage(format!("no mutex {other:?}"))),
            };
            which.start_update_and_hold(HANG_GUARD)?;
            ready.write_all(b"!").context("say the lock is held")?;
            // Hold it until SIGKILL, or until the parent dies (PR_SET_PDEATHSIG).
            std::thread::sleep(HANG_GUARD);
            bail!("the holder was never killed");
        }
        other => return Err(usage(format!("unknown role `{other}`"))),
    }
    Ok(Outcome::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each claim follows what was observed: forced the other way, it does not hold, and its
    /// evidence is what was seen.
    #[test]
    fn each_claim_follows_what_was_observed() {
        for ok in [true, false] {
            let seen = |what: &str| Seen {
                ok,
                text: format!("seen: {what}"),
            };
            let death = Death {
                owner_died_seen: true,
                repaired: true,
                recovered: ok,
                unrecoverable_seen: true,
                seen: "seen: death".to_owned(),
            };
            let mut report = Report::new(env!("CARGO_PKG_NAME"));
            judge_claims(&mut report, &seen("counts"), &death, &seen("poison"));
            for c in &report.claims {
                let expected = if ok {
                    Verdict::Holds
                } else {
                    Verdict::DoesNotHold
                };
                assert_eq!(c.verdict, expected, "{}", c.id);
                assert!(c.evidence.contains("seen: "), "{}", c.evidence);
            }
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
