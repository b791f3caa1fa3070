//! Step 1, wake-ups: post → wait → post back, between two processes on the unnamed
//! process-shared semaphores of the page, and between two threads on `Mutex` + `Condvar`
//! semaphores, in alternating blocks. Half a round trip is the post-to-wake latency.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use labkit::pin::{Placement, pin_thread_to};
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder, Measurement, Pin, Report, Variant};
use nix::unistd::Pid;
use serde_json::json;

use crate::child;
use crate::page::Page;
use crate::sem::{CondvarSem, Semaphore};
use crate::watchdog::{self, Peers};

/// Step 1's sizes, sides and placement.
pub struct Sizes {
    pub round_trips: u64,
    pub blocks: u64,
    /// Which side runs: [process, thread].
    pub sides: [bool; 2],
    pub pin: Pin,
    pub cpus: Placement,
}

/// One placement's post-to-wake latency, in ns, per side that ran: [process, thread].
pub struct WakeUp {
    pub pin: Pin,
    pub ns: [Option<f64>; 2],
}

/// Step 1: post → wait → post back, processes and threads in alternating blocks.
pub fn measure(report: &mut Report, page: &Page, w: &Sizes, shutdown: &Shutdown) -> Result<WakeUp> {
    // A new pong for each placement: the last one's stop must not stop it.
    page.stop().store(0, Ordering::SeqCst);
    // The pong process is started even with `--variant thread` (it then waits, untouched).
    let peers: Peers = RefCell::new(vec![child::start_pong(page, w.cpus.peer)?]);
    let dead = AtomicBool::new(false);
    let (t_ping, t_pong, t_stop) = (CondvarSem::new(0), CondvarSem::new(0), AtomicU64::new(0));
    let pids = vec![peers.borrow()[0].pid()];
    let sems = &page.sems;
    let (lat, cpu) = std::thread::scope(|s| {
        let _watchdog = watchdog::start(s, &peers, shutdown, vec![&sems.pong], &dead)?;
        let peer_cpu = w.cpus.peer;
        let (ping, pong_back, stop) = (&t_ping, &t_pong, &t_stop);
        std::thread::Builder::new()
            .name("pong".into())
            .spawn_scoped(s, move || {
                pin_thread_to(peer_cpu);
                pong(ping, pong_back, stop, &|| true)
            })
            .context("spawn the pong thread")?;
        let sides: [(&dyn Semaphore, &dyn Semaphore); 2] =
            [(&sems.ping, &sems.pong), (&t_ping, &t_pong)];
        let alive = || !dead.load(Ordering::Relaxed);
        let result = ping_pong(w, sides, &pids, &alive, &peers);
        // Stop both pongs whatever happened.
        t_stop.store(1, Ordering::SeqCst);
        let _ = t_ping.post();
        page.stop().store(1, Ordering::SeqCst);
        let _ = sems.ping.post();
        result
    })?;
    for p in peers.into_inner() {
        p.finish()?;
    }
    Ok(record(report, w, &lat, &cpu))
}

/// The alternating blocks (block 0, a tenth of the round trips, warms up and is not counted),
/// each side through its (ping, pong) pair; the latencies and CPU time per side.
fn ping_pong(
    w: &Sizes,
    sides: [(&dyn Semaphore, &dyn Semaphore); 2],
    pids: &[Pid],
    alive: &dyn Fn() -> bool,
    peers: &Peers,
) -> Result<([LatencyRecorder; 2], [Duration; 2])> {
    let mut lat = [LatencyRecorder::new(), LatencyRecorder::new()];
    let mut cpu = [Duration::ZERO; 2];
    for block in 0..=w.blocks {
        let n = if block == 0 {
            w.round_trips / 10
        } else {
            w.round_trips / w.blocks
        };
        for (i, (ping, pong)) in sides.into_iter().enumerate().filter(|(i, _)| w.sides[*i]) {
            let watch: &[_] = if i == 0 { pids } else { &[] };
            let cpu_before = CpuClock::now(watch)?;
            for _ in 0..n {
                let start = Instant::now();
                ping.post()?;
                pong.wait(alive).map_err(|e| watchdog::broke(peers, e))?;
                if block > 0 {
                    lat[i].record(start.elapsed());
                }
            }
            if block > 0 {
                cpu[i] += CpuClock::since(cpu_before, watch)?;
            }
        }
    }
    Ok((lat, cpu))
}

/// Writes the round trips and the wake-up latency of each side into the Report, and returns
/// the latter.
fn record(
    report: &mut Report,
    w: &Sizes,
    lat: &[LatencyRecorder; 2],
    cpu: &[Duration; 2],
) -> WakeUp {
    let mut ns = [None, None];
    for (i, (variant, mechanism)) in [
        (Variant::Process, "sem-pshared"),
        (Variant::Thread, "condvar-sem"),
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| w.sides[*i])
    {
        let per_op = labkit::measure::cpu_ns_per_op(cpu[i], lat[i].len());
        let config = json!({ "pin": w.pin.as_str() });
        report.measure(Measurement::histogram(
            "round_trip",
            variant,
            mechanism,
            config.clone(),
            &lat[i],
            per_op,
        ));
        let wake_up = lat[i].p50() as f64 / 2.0;
        report.measure(Measurement::value(
            "wake_up", variant, mechanism, config, "ns", wake_up, None,
        ));
        ns[i] = Some(wake_up);
    }
    WakeUp { pin: w.pin, ns }
}

/// The answering side of step 1: wait for a ping, post a pong, until told to stop.
pub fn pong(
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
