//! Step 2, the bounded buffer of [`crate::ring`], three ways in alternating blocks: producer
//! processes on the page's unnamed semaphores, producer processes on named semaphores, producer
//! threads on `Condvar` semaphores; one consumer, this thread, checks every item.

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use labkit::measure::cpu_ns_per_op;
use labkit::names::{Kind, Reservation, reserve};
use labkit::signals::Shutdown;
use labkit::{CpuClock, Measurement, Report, Variant};
use serde_json::json;

use crate::child;
use crate::page::Page;
use crate::ring::{Buffer, Local, SLOTS};
use crate::sem::PosixSem;
use crate::watchdog::{self, Peers};

/// Step 2's sizes and sides.
pub struct Sizes {
    pub producers: u64,
    pub items: u64,
    pub blocks: u64,
    /// Which side runs: [process, thread].
    pub sides: [bool; 2],
}

/// The three ways, in the order of [`Buffered::rates`].
const WAYS: [(Variant, &str); 3] = [
    (Variant::Process, "sem-pshared"),
    (Variant::Process, "sem-named"),
    (Variant::Thread, "condvar-sem"),
];

/// What step 2 saw: whether every item arrived once and in order, and each way's rate, in
/// millions of items per second (`None` for a way not run).
pub struct Buffered {
    pub exact: bool,
    pub rates: [Option<f64>; 3],
}

/// One bounded-buffer run.
struct Run {
    elapsed: Duration,
    cpu: Duration,
    wrong: u64,
}

/// Step 2: the bounded buffer, three ways, alternating blocks.
pub fn measure(
    report: &mut Report,
    page: &Page,
    b: Sizes,
    shutdown: &Shutdown,
) -> Result<Buffered> {
    let Sizes {
        producers,
        items,
        blocks,
        sides,
    } = b;
    let mut runs: [Vec<Run>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..blocks {
        shutdown.check()?;
        if sides[0] {
            let sems = [&page.sems.empty, &page.sems.full, &page.sems.lock];
            runs[0].push(with_processes(
                page, sems, None, producers, items, shutdown,
            )?);
            runs[1].push(with_named(page, producers, items, shutdown)?);
        }
        if sides[1] {
            runs[2].push(with_threads(producers, items, shutdown)?);
        }
    }
    let total = producers * items * blocks;
    let mut lines = Vec::new();
    let mut seen = Buffered {
        exact: true,
        rates: [None; 3],
    };
    for (i, (variant, mechanism)) in WAYS.into_iter().enumerate() {
        if runs[i].is_empty() {
            continue;
        }
        let elapsed: Duration = runs[i].iter().map(|r| r.elapsed).sum();
        let cpu: Duration = runs[i].iter().map(|r| r.cpu).sum();
        let wrong: u64 = runs[i].iter().map(|r| r.wrong).sum();
        seen.exact &= wrong == 0;
        let config = json!({ "producers": producers, "items": items, "slots": SLOTS });
        let rate = total as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6;
        let per_op = cpu_ns_per_op(cpu, total);
        report.measure(Measurement::value(
            "items", variant, mechanism, config, "M/s", rate, per_op,
        ));
        seen.rates[i] = Some(rate);
        lines.push(format!(
            "{mechanism}: {} of {total} in order",
            total - wrong
        ));
    }
    report.check(
        "every item was consumed exactly once, in order per producer",
        seen.exact,
        format!(
            "{producers} producers x {items} items, {blocks} blocks per way; {}",
            lines.join("; ")
        ),
    );
    Ok(seen)
}

/// Producers as child processes on `sems` (empty, full, lock): the page's unnamed ones, or the
/// `named` ones, whose names are unlinked once every producer has them open.
fn with_processes(
    page: &Page,
    sems: [&PosixSem; 3],
    named: Option<(&[String; 3], &mut [Reservation])>,
    producers: u64,
    items: u64,
    shutdown: &Shutdown,
) -> Result<Run> {
    // Each producer says `ready` (a byte) once it has the semaphores open, then waits for EOF
    // on `go`.
    let (mut ready_rx, ready_tx) = std::io::pipe().context("pipe")?;
    let (go_rx, go_tx) = std::io::pipe().context("pipe")?;
    let mut spawned = Vec::new();
    for p in 0..producers {
        let pipes = [ready_tx.as_fd(), go_rx.as_fd()];
        let names = named.as_ref().map(|(names, _)| *names);
        spawned.push(child::start_producer(page, pipes, p, items, names)?);
    }
    drop((ready_tx, go_rx)); // The children have them; ours would hide their deaths.
    let peers: Peers = Peers::new(spawned);
    for _ in 0..producers {
        if ready_rx.read_exact(&mut [0u8; 1]).is_err() {
            let early = std::io::Error::other("a producer ended before it was ready");
            return Err(watchdog::broke(&peers, early));
        }
    }
    // Every producer has the named semaphores open: the names have done their job.
    if let Some((_, reservations)) = named {
        for r in reservations.iter_mut() {
            r.unlink().context("sem_unlink")?;
        }
    }
    let pids: Vec<_> = peers.borrow().iter().map(|p| p.pid()).collect();
    let cpu_before = CpuClock::now(&pids)?;
    let start = Instant::now();
    drop(go_tx); // EOF on `go`: every producer starts at once.
    let [empty, full, lock] = sems;
    let buffer = Buffer {
        empty,
        full,
        lock,
        ring: page.ring(),
    };
    let dead = AtomicBool::new(false);
    let alive = || !dead.load(Ordering::Relaxed);
    let wrong = std::thread::scope(|s| -> Result<u64> {
        let _watchdog = watchdog::start(s, &peers, shutdown, vec![full], &dead)?;
        buffer
            .consume(producers, producers * items, &alive)
            .map_err(|e| watchdog::broke(&peers, e))
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
fn with_named(page: &Page, producers: u64, items: u64, shutdown: &Shutdown) -> Result<Run> {
    let mut reservations = Vec::new();
    let mut sems = Vec::new();
    for value in [SLOTS as u32, 0, 1] {
        let mut r = reserve(Kind::Sem)?;
        sems.push(PosixSem::create_named(r.name(), value)?);
        r.mark_created();
        reservations.push(r);
    }
    let names: [String; 3] = std::array::from_fn(|i| reservations[i].name().to_owned());
    let sems = [&sems[0], &sems[1], &sems[2]];
    let named = Some((&names, reservations.as_mut_slice()));
    with_processes(page, sems, named, producers, items, shutdown)
}

/// Producers as threads, on `Condvar` semaphores.
fn with_threads(producers: u64, items: u64, shutdown: &Shutdown) -> Result<Run> {
    let local = Local::new();
    let buffer = local.buffer();
    let cpu_before = CpuClock::now(&[])?;
    let start = Instant::now();
    // "Alive" here means "not interrupted": a Ctrl-C stops the consumer within 4096 items, and
    // producers blocked on a full buffer within one recheck.
    // A producer that could not be started stops the others too, else they would wait for room
    // forever.
    let failed = AtomicBool::new(false);
    let going = || !failed.load(Ordering::Relaxed) && shutdown.check().is_ok();
    let wrong = std::thread::scope(|s| -> Result<u64> {
        for p in 0..producers {
            let (buffer, going) = (&buffer, &going);
            let spawned = std::thread::Builder::new()
                .name("producer".into())
                .spawn_scoped(s, move || buffer.produce(p, items, going));
            if let Err(e) = spawned {
                failed.store(true, Ordering::Relaxed);
                return Err(e).context("spawn a producer thread");
            }
        }
        Ok(buffer.consume(producers, producers * items, &going)?)
    });
    shutdown.check()?;
    let wrong = wrong?;
    Ok(Run {
        elapsed: start.elapsed(),
        cpu: CpuClock::since(cpu_before, &[])?,
        wrong,
    })
}
