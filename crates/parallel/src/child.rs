//! The helper processes: the fork helper, and the pool of worker processes, each this binary
//! again in a role of its own, fed over one pipe and answering over another.

use std::io::{PipeReader, PipeWriter};
use std::os::fd::AsFd;

use anyhow::{Context, Result};
use labkit::child::{Peer, fd_args, this_binary};
use nix::unistd::Pid;

use crate::primes::Tally;
use crate::workers;

/// Starts this binary again in `role`, fed over a pipe of requests and answering over a pipe
/// of replies; returns the child and our ends of both pipes.
fn start(role: &str) -> Result<(Peer, PipeWriter, PipeReader)> {
    let (their_requests, requests) = std::io::pipe().context("pipe")?;
    let (replies, their_replies) = std::io::pipe().context("pipe")?;
    // The child is this binary again, in the role `role`. It inherits the read end of the
    // requests and the write end of the replies at the same descriptor numbers, named by `--fd`
    // (it takes them back with `args.role.take_fds()`); Rust opens every other descriptor of
    // ours close-on-exec, so it gets none of them. `Peer::start` has it die with us and ignore
    // Ctrl-C (we decide when it ends: at EOF on its requests), and kills and reaps it if we
    // drop it.
    let mut command = this_binary(role)?; // <this binary> --role <role>
    command.args(fd_args(&[their_requests.as_fd(), their_replies.as_fd()]));
    let peer = Peer::start(command, &[their_requests.as_fd(), their_replies.as_fd()])?;
    // The child has its copies; ours would hide its death (no EOF while we hold a write end).
    drop((their_requests, their_replies));
    Ok((peer, requests, replies))
}

/// The fork helper: a child process that forks the worker processes, since this one has
/// threads (a rayon pool) and the helper never starts one ([`workers::serve_forks`]).
pub struct Forker {
    peer: Peer,
    requests: PipeWriter,
    replies: PipeReader,
}

impl Forker {
    pub fn start() -> Result<Forker> {
        let (peer, requests, replies) = start("forker")?;
        Ok(Forker {
            peer,
            requests,
            replies,
        })
    }

    pub fn pid(&self) -> Pid {
        self.peer.pid()
    }

    /// The job on `workers` forked processes: the result, and the workers' CPU time in ns.
    pub fn run(&mut self, limit: u64, workers: u64) -> Result<(Tally, u64)> {
        let f = workers::forked(&mut self.requests, &mut self.replies, limit, workers)
            .map_err(|e| self.peer.death(e))?;
        Ok((f.tally, f.cpu_ns))
    }

    /// EOF between requests: the helper leaves, and must exit 0.
    pub fn finish(self) -> Result<()> {
        drop(self.requests);
        self.peer.finish()
    }
}

/// Worker processes started once, before any job: each is fed its share of every job over a
/// pipe of its own and answers over another ([`workers::serve_pool`]).
pub struct ProcessPool {
    peers: Vec<Peer>,
    links: Vec<(PipeWriter, PipeReader)>,
}

impl ProcessPool {
    /// `workers` children in the role `pool-worker`, started as the fork helper is.
    pub fn start(workers: u64) -> Result<ProcessPool> {
        let mut peers = Vec::new();
        let mut links = Vec::new();
        for _ in 0..workers {
            let (peer, shares, results) = start("pool-worker")?;
            peers.push(peer);
            links.push((shares, results));
        }
        Ok(ProcessPool { peers, links })
    }

    pub fn pids(&self) -> Vec<Pid> {
        self.peers.iter().map(Peer::pid).collect()
    }

    /// One job, each worker its share; a broken pipe says which worker died and how.
    pub fn run(&mut self, limit: u64) -> Result<Tally> {
        workers::pool_job(&mut self.links, limit)
            .map_err(|e| labkit::child::explain_break(&mut self.peers, e))
    }

    /// EOF between jobs ends each worker; each must exit 0.
    pub fn finish(self) -> Result<()> {
        drop(self.links);
        self.peers.into_iter().try_for_each(Peer::finish)
    }
}
