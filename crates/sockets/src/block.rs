//! One block of the server under load: a fresh server process (this binary in the role
//! `server`), a warm-up connection, `--clients` client threads with a memory sampler beside
//! them, a rude client, then the stop; what the block saw is added to its model's [`Load`].

use std::fs::File;
use std::io::{self, PipeWriter};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use labkit::child::{HANG_GUARD, Peer, explain_break, fd_args, this_binary};
use labkit::signals::Shutdown;
use labkit::{CpuClock, LatencyRecorder};

use crate::Plan;
use crate::contender::loopback_listener;
use crate::load::{Load, ModelArg, WARMUP_REQUESTS};
use crate::server::{self, ConnStats, Model};

/// How often the server's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// What the sampler saw of the server and its children at their largest.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub pss_kib: u64,
    pub rss_kib: u64,
    pub threads: usize,
    pub processes: usize,
}

/// What one client thread came back with: the requests it had confirmed (or why it stopped),
/// and their latencies; `Err` if it panicked.
type ClientResult = std::thread::Result<(io::Result<u64>, LatencyRecorder)>;

/// What the clients of one block got: per client, the requests confirmed (or why it stopped)
/// and their latencies; the time they took, and the sampler's peaks and own CPU time.
struct Clients {
    results: Vec<ClientResult>,
    elapsed: Duration,
    peak: Sample,
    sampling: Duration,
}

/// One block of `load`'s model: a fresh server process, `requests_each` requests from every
/// client against it (0: the idle baseline, only its CPU time counts), a rude client if `rude`,
/// then the stop.
pub fn run(
    load: &mut Load,
    plan: &Plan,
    requests_each: u64,
    shutdown: &Shutdown,
    rude: bool,
) -> Result<()> {
    // CPU of this process (the clients) and of reaped children (the server and its own).
    let cpu_before = CpuClock::now(&[])?;
    // One client failing stops the others: the run ends now, not when they finish.
    let failed = AtomicBool::new(false);
    let keep_going = || !failed.load(Ordering::Relaxed) && shutdown.check().is_ok();
    let mark = ("--requests", requests_each);
    let (server, mut peer) = Server::start(load.model, plan, mark, &keep_going)?;
    let (addr, bytes) = (server.addr, plan.bytes);
    let pid = peer.pid().as_raw() as u32;
    let clients = drive(addr, plan, requests_each, pid, &failed, &keep_going)?;
    let requests = tally(load, clients.results, &mut peer)?;
    if rude {
        server::leave_mid_request(addr, bytes).context("the rude client")?;
        load.after_rude = server::client(addr, 1, 1, bytes, HANG_GUARD, &mut |_| {}, &keep_going)
            .map_err(|e| explain_break(std::slice::from_mut(&mut peer), e))?;
    }
    let stats = server.stop(peer)?;
    load.cpu += CpuClock::since(cpu_before, &[])?.saturating_sub(clients.sampling);
    if requests_each > 0 {
        add_block(load, &stats, requests, clients.elapsed, clients.peak);
    }
    Ok(())
}

/// A server started for one block, beside its process's `Peer`: the address it listens on,
/// the write end of its stop pipe, and the thread that reads its per-connection records as
/// they come (a full pipe would stall every connection's last write).
pub struct Server {
    pub addr: SocketAddr,
    stop: PipeWriter,
    stats: JoinHandle<io::Result<Vec<u8>>>,
}

impl Server {
    /// Starts a fresh server of `model` (see [`start_server`]) and makes a warm-up connection,
    /// untimed: the first timed request must not wait for the server to start (its runtime, its
    /// pool) nor, for the fork model, be the first to fork. `keep_going` is asked before each
    /// warm-up request. Returns it with its process.
    pub fn start(
        model: Model,
        plan: &Plan,
        mark: (&str, u64),
        keep_going: &dyn Fn() -> bool,
    ) -> Result<(Server, Peer)> {
        let listener = loopback_listener()?;
        let addr: SocketAddr = listener.local_addr().context("getsockname")?;
        let (stop_rx, stop) = std::io::pipe().context("pipe (stop)")?;
        let (stats_rx, stats_tx) = std::io::pipe().context("pipe (stats)")?;
        let mut peer = start_server(model, plan, mark, listener, stop_rx, stats_tx)?;
        let stats_rx = File::from(OwnedFd::from(stats_rx));
        let stats = std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || server::read_stats(stats_rx))
            .context("spawn the stats reader thread")?;
        let (n, bytes) = (WARMUP_REQUESTS, plan.bytes);
        server::client(addr, n, n, bytes, HANG_GUARD, &mut |_| {}, keep_going)
            .map_err(|e| explain_break(std::slice::from_mut(&mut peer), e))
            .context("the warm-up connection")?;
        Ok((Server { addr, stop, stats }, peer))
    }

    /// Stops the server: EOF on its stop pipe, and it stops accepting, finishes its
    /// connections and exits. One that has not exited within the hang guard is an error (and
    /// is killed as its `Peer` is dropped), not a hang. Returns its per-connection records.
    pub fn stop(self, mut peer: Peer) -> Result<Vec<u8>> {
        let Server { stop, stats, .. } = self;
        drop(stop);
        match peer.wait_for(HANG_GUARD)? {
            Some(_) => peer.finish()?,
            None => bail!(
                "the server did not stop within {} s of being told to",
                HANG_GUARD.as_secs()
            ),
        }
        // The server has exited, and its children died with it at the latest: the pipe is at EOF.
        stats
            .join()
            .map_err(|_| anyhow!("the stats reader panicked"))?
            .context("read the server's stats pipe")
    }
}

/// Starts the server: this binary again, in the role `server`, running `model`. It inherits the
/// listening socket, the read end of the stop pipe and the write end of the stats pipe, by
/// `--fd` in that order; we close our copies, so that if it dies, connecting fails instead of
/// waiting. `mark`, a flag the server does not use, tells a timed block's server from the idle
/// baseline's (0: no mark) in a process listing (the tests kill the former).
fn start_server(
    model: Model,
    plan: &Plan,
    mark: (&str, u64),
    listener: TcpListener,
    stop_rx: io::PipeReader,
    stats_tx: PipeWriter,
) -> Result<Peer> {
    let fds = [listener.as_fd(), stop_rx.as_fd(), stats_tx.as_fd()];
    let mut command = this_binary("server")?;
    command.args(fd_args(&fds));
    let workers = model.workers().unwrap_or(1).max(1);
    command.args(["--model", ModelArg::of(model)]);
    command.args([
        "--workers",
        &workers.to_string(),
        "--bytes",
        &plan.bytes.to_string(),
    ]);
    if mark.1 > 0 {
        command.args([mark.0, &mark.1.to_string()]);
    }
    Peer::start(command, &fds)
}

/// `--clients` client threads, each making `requests_each` requests, with the sampler beside
/// them watching `server` and its children. If a thread cannot be started, those already
/// running are stopped (`failed`, `done`) and the error returned.
fn drive(
    addr: SocketAddr,
    plan: &Plan,
    requests_each: u64,
    server: u32,
    failed: &AtomicBool,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<Clients> {
    let done = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<Clients> {
        let sampler = std::thread::Builder::new()
            .name("sampler".into())
            .spawn_scoped(s, || sample_server(server, &done))
            .context("spawn the memory sampler thread")?;
        let clients = (0..plan.clients)
            .map(|_| {
                std::thread::Builder::new()
                    .name("client".into())
                    .spawn_scoped(s, || {
                        let mut latency = LatencyRecorder::new();
                        let served = server::client(
                            addr,
                            requests_each,
                            plan.per_connection,
                            plan.bytes,
                            HANG_GUARD,
                            &mut |d| latency.record(d),
                            keep_going,
                        );
                        if served.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        (served, latency)
                    })
            })
            .collect::<io::Result<Vec<_>>>();
        let clients = match clients {
            Ok(clients) => clients,
            Err(e) => {
                // The clients already running stop before their next request, the sampler
                // after its next sample; the scope waits for them.
                failed.store(true, Ordering::Relaxed);
                done.store(true, Ordering::Release);
                return Err(e).context("spawn a client thread");
            }
        };
        let results: Vec<_> = clients.into_iter().map(|c| c.join()).collect();
        let elapsed = start.elapsed();
        done.store(true, Ordering::Release);
        let (peak, sampling) = sampler.join().unwrap_or_default();
        Ok(Clients {
            results,
            elapsed,
            peak,
            sampling,
        })
    })
}

/// Adds up the requests the clients confirmed, and their latencies into `load`. A client that
/// failed ends the run, saying how, and how the server died if it did.
fn tally(load: &mut Load, results: Vec<ClientResult>, peer: &mut Peer) -> Result<u64> {
    let mut requests = 0;
    let mut first_error: Option<(usize, io::Error)> = None;
    for (i, result) in results.into_iter().enumerate() {
        let (served, latency) = result.map_err(|_| anyhow!("a client thread panicked"))?;
        match served {
            Ok(n) => requests += n,
            // A client stopped because another failed says less than the one that failed.
            Err(e)
                if first_error
                    .as_ref()
                    .is_none_or(|(_, f)| f.kind() == io::ErrorKind::Interrupted) =>
            {
                first_error = Some((i, e));
            }
            Err(_) => {}
        }
        load.latency.add(&latency);
    }
    let Some((i, e)) = first_error else {
        return Ok(requests);
    };
    let what = if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        format!(
            "had no answer within the {} s hang guard",
            HANG_GUARD.as_secs()
        )
    } else {
        "lost its connection (the process or thread serving it ended)".to_owned()
    };
    let name = load.model.name();
    Err(explain_break(std::slice::from_mut(peer), e)
        .context(format!("client {i} of the {name} server {what}")))
}

/// Adds a timed block to `load`: the server's per-connection records, the requests the
/// clients confirmed in `elapsed`, and the sampler's peaks.
fn add_block(load: &mut Load, stats: &[u8], requests: u64, elapsed: Duration, peak: Sample) {
    let (connections, served) = ConnStats::total(stats);
    load.connections += connections;
    load.served += served;
    load.requests += requests;
    load.elapsed += elapsed;
    load.rates.push(requests as f64 / elapsed.as_secs_f64());
    load.pss_peaks.push(peak.pss_kib as f64);
    load.peak.pss_kib = load.peak.pss_kib.max(peak.pss_kib);
    load.peak.rss_kib = load.peak.rss_kib.max(peak.rss_kib);
    load.peak.threads = load.peak.threads.max(peak.threads);
    load.peak.processes = load.peak.processes.max(peak.processes);
}

/// Samples the memory of `server` and its children until `done`; returns the peaks and the
/// CPU time the sampling itself took (not the server's, so it is taken off).
fn sample_server(server: u32, done: &AtomicBool) -> (Sample, Duration) {
    let cpu = || {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
            .map(Duration::from)
            .unwrap_or_default()
    };
    let before = cpu();
    let mut peak = Sample::default();
    loop {
        let (pss, rss, alive) = crate::memory::tree_kib(server);
        peak.pss_kib = peak.pss_kib.max(pss);
        peak.rss_kib = peak.rss_kib.max(rss);
        peak.processes = peak.processes.max(alive);
        peak.threads = peak
            .threads
            .max(labkit::procfs::thread_count(server).unwrap_or(0));
        if done.load(Ordering::Acquire) {
            return (peak, cpu() - before);
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}
