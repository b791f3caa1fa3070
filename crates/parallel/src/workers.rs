//! Ways to spread the job over `w` workers, and one to run it alone.
//!
//! * threads from a rayon pool, which steals chunks as workers free up;
//! * workers created for each job: scoped threads (`std::thread::scope`), or forked worker
//!   processes, each computing an interleaved share and handing back its result;
//! * workers created once, before any job: a pool of threads fed over channels
//!   ([`ThreadPool`]), or a pool of processes fed over pipes ([`serve_pool`], [`pool_job`]),
//!   each worker given its share of every job and answering with its result.
//!
//! Forking happens in a helper process that never starts a thread ([`serve_forks`]), so each
//! fork copies a consistent process: the rule for `fork` in a program that has threads.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};
use rayon::prelude::*;

use crate::primes::{CHUNKS, Tally, chunk, share};

/// The job on the calling thread alone.
pub fn serial(limit: u64) -> Tally {
    share(limit, 0, 1)
}

/// The job on a rayon pool: chunks are stolen by whichever worker is free.
pub fn rayon(pool: &rayon::ThreadPool, limit: u64) -> Tally {
    pool.install(|| {
        (0..CHUNKS)
            .into_par_iter()
            .map(|i| chunk(limit, i))
            .reduce(Tally::default, |a, b| a + b)
    })
}

/// The job on `workers` scoped threads, each with an interleaved share; the error of a thread
/// that could not be created (those already made finish their shares first).
pub fn scoped_threads(limit: u64, workers: u64) -> io::Result<Tally> {
    std::thread::scope(|s| {
        let handles = (0..workers)
            .map(|w| {
                std::thread::Builder::new()
                    .name(format!("scoped-{w}"))
                    .spawn_scoped(s, move || share(limit, w, workers))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread panicked"))
            .fold(Tally::default(), |a, b| a + b))
    })
}

/// One worker's share of a job: (limit, this worker, workers), as 24 bytes on a pipe.
fn encode_share(limit: u64, w: u64, workers: u64) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&limit.to_le_bytes());
    b[8..16].copy_from_slice(&w.to_le_bytes());
    b[16..].copy_from_slice(&workers.to_le_bytes());
    b
}

fn tally_bytes(t: Tally) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&t.count.to_le_bytes());
    out[8..].copy_from_slice(&t.sum.to_le_bytes());
    out
}

fn tally_of(b: &[u8]) -> Tally {
    Tally {
        count: word(b, 0),
        sum: word(b, 8),
    }
}

/// The little-endian `u64` at byte `i` of a message.
fn word(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

/// The next message of `N` bytes, or `None` at EOF between messages: the sender is done.
fn next_message<const N: usize>(from: &mut impl Read) -> io::Result<Option<[u8; N]>> {
    let mut b = [0u8; N];
    match from.read_exact(&mut b) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        other => other.map(|()| Some(b)),
    }
}

/// Worker threads started once; each is handed its share of every job over a channel and
/// answers with its result over another.
pub struct ThreadPool {
    shares: Vec<mpsc::SyncSender<(u64, u64, u64)>>,
    results: mpsc::Receiver<Tally>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ThreadPool {
    pub fn start(workers: u64) -> io::Result<ThreadPool> {
        let (results_tx, results) = mpsc::channel();
        let mut shares = Vec::new();
        let mut threads = Vec::new();
        for w in 0..workers {
            let (share_tx, share_rx) = mpsc::sync_channel::<(u64, u64, u64)>(1);
            let results_tx = results_tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("pool-{w}"))
                    .spawn(move || {
                        for (limit, w, workers) in share_rx {
                            if results_tx.send(share(limit, w, workers)).is_err() {
                                return;
                            }
                        }
                    })?,
            );
            shares.push(share_tx);
        }
        Ok(ThreadPool {
            shares,
            results,
            threads,
        })
    }

    /// The job on the pool: every worker's share, and the sum of their results.
    pub fn run(&self, limit: u64) -> io::Result<Tally> {
        let workers = self.shares.len() as u64;
        let gone = || io::Error::other("a pool thread is gone");
        for (w, tx) in (0u64..).zip(&self.shares) {
            tx.send((limit, w, workers)).map_err(|_| gone())?;
        }
        (0..workers).try_fold(Tally::default(), |t, _| {
            Ok(t + self.results.recv().map_err(|_| gone())?)
        })
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shares.clear(); // The workers' loops end when their channel closes.
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A pool process's loop: for each share read from `shares`, compute it and write the result
/// to `results`. Ends at EOF between shares.
pub fn serve_pool(mut shares: impl Read, mut results: impl Write) -> io::Result<()> {
    while let Some(b) = next_message::<24>(&mut shares)? {
        results.write_all(&tally_bytes(share(word(&b, 0), word(&b, 8), word(&b, 16))))?;
    }
    Ok(())
}

/// The job on a pool of processes, given as each one's (shares, results) pipe ends: every
/// worker is handed its share first, so that they all compute at once, then each answers.
pub fn pool_job<W: Write, R: Read>(links: &mut [(W, R)], limit: u64) -> io::Result<Tally> {
    let workers = links.len() as u64;
    for (w, (shares, _)) in (0u64..).zip(links.iter_mut()) {
        shares.write_all(&encode_share(limit, w, workers))?;
    }
    links
        .iter_mut()
        .try_fold(Tally::default(), |t, (_, results)| {
            let mut b = [0u8; 16];
            results.read_exact(&mut b)?;
            Ok(t + tally_of(&b))
        })
}

/// What the fork helper answers for one job: the result and its workers' CPU time.
#[derive(Clone, Copy, Debug)]
pub struct Forked {
    pub tally: Tally,
    pub cpu_ns: u64,
}

/// Asks the fork helper (through `requests`/`replies`) to run the job on `workers` processes.
pub fn forked(
    requests: &mut impl Write,
    replies: &mut impl Read,
    limit: u64,
    workers: u64,
) -> io::Result<Forked> {
    let mut request = [0u8; 16];
    request[..8].copy_from_slice(&limit.to_le_bytes());
    request[8..].copy_from_slice(&workers.to_le_bytes());
    requests.write_all(&request)?;
    let mut reply = [0u8; 24];
    replies.read_exact(&mut reply)?;
    Ok(Forked {
        tally: tally_of(&reply),
        cpu_ns: word(&reply, 16),
    })
}

/// The fork helper's loop: for each request, fork the workers, gather their results over one
/// pipe, reap them, and reply. Ends at EOF between requests. Must run in a process that has
/// never started a thread.
pub fn serve_forks(mut requests: impl Read, mut replies: impl Write) -> io::Result<()> {
    while let Some(request) = next_message::<16>(&mut requests)? {
        let (limit, workers) = (word(&request, 0), word(&request, 8));
        let cpu_before = children_cpu_ns()?;
        let (mut results, results_tx) = std::io::pipe()?;
        let helper = std::process::id() as libc::pid_t;
        let mut pids = Workers(Vec::new());
        for w in 0..workers {
            // SAFETY: this helper process never starts a thread, so the child is a consistent
            // copy; it computes, writes one result and leaves with `_exit`.
            match unsafe { fork() }? {
                ForkResult::Child => {
                    // Die with the helper (which dies with the main process): a worker must
                    // never go on counting for nobody. If the helper is already gone, leave.
                    // SAFETY: prctl and getppid are plain system calls with no memory arguments.
                    unsafe {
                        if libc::prctl(
                            libc::PR_SET_PDEATHSIG,
                            libc::SIGKILL as libc::c_ulong,
                            0,
                            0,
                            0,
                        ) != 0
                            || libc::getppid() != helper
                        {
                            libc::_exit(1);
                        }
                    }
                    let out = tally_bytes(share(limit, w, workers));
                    // One write of 16 bytes (< PIPE_BUF) is atomic: results never interleave.
                    let ok = (&results_tx).write_all(&out).is_ok();
                    // SAFETY: `_exit` ends the child without running the helper's exit code.
                    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
                }
                ForkResult::Parent { child } => pids.0.push(child),
            }
        }
        // Our copy of the write end goes, so EOF comes once every worker is done.
        drop(results_tx);
        let mut bytes = Vec::new();
        results.read_to_end(&mut bytes)?;
        let mut failed = 0;
        for pid in std::mem::take(&mut pids.0) {
            if !matches!(waitpid(pid, None)?, WaitStatus::Exited(_, 0)) {
                failed += 1;
            }
        }
        if failed > 0 || bytes.len() != 16 * workers as usize {
            return Err(io::Error::other(format!(
                "{failed} of {workers} workers failed"
            )));
        }
        let tally = bytes
            .chunks_exact(16)
            .fold(Tally::default(), |t, b| t + tally_of(b));
        let cpu_ns = children_cpu_ns()?.saturating_sub(cpu_before);
        let mut reply = [0u8; 24];
        reply[..8].copy_from_slice(&tally.count.to_le_bytes());
        reply[8..16].copy_from_slice(&tally.sum.to_le_bytes());
        reply[16..].copy_from_slice(&cpu_ns.to_le_bytes());
        replies.write_all(&reply)?;
    }
    Ok(())
}

/// Forked workers not yet reaped: on any early return they are killed and reaped.
struct Workers(Vec<nix::unistd::Pid>);

impl Drop for Workers {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// CPU time (user + system) of this process's reaped children, in ns.
fn children_cpu_ns() -> io::Result<u64> {
    let u = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    Ok(((u.user_time().num_microseconds() + u.system_time().num_microseconds()) * 1000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_gives_the_same_result() {
        let limit = 300_000;
        let expected = serial(limit);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        assert_eq!(rayon(&pool, limit), expected);
        assert_eq!(scoped_threads(limit, 3).unwrap(), expected);
        assert_eq!(ThreadPool::start(3).unwrap().run(limit).unwrap(), expected);
        // A process pool's protocol, served by threads over pipes here.
        let mut links = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..3 {
            let (shares_rx, shares_tx) = std::io::pipe().unwrap();
            let (results_rx, results_tx) = std::io::pipe().unwrap();
            servers.push(std::thread::spawn(move || {
                serve_pool(shares_rx, results_tx)
            }));
            links.push((shares_tx, results_rx));
        }
        assert_eq!(pool_job(&mut links, limit).unwrap(), expected);
        drop(links);
        for s in servers {
            s.join().unwrap().unwrap();
        }
    }
}
