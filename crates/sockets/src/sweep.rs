//! Step 5: many connections held at once. Every server model holds 10, 100, 1,000 …
//! connections (`--connections-up-to`, or one count with `--connections`), each open for the
//! whole block, driven by a separate client process with its own event loop (the crowd,
//! [`crate::crowd`]). Per model and count: the time to get every connection accepted; requests
//! per second and latency with `--in-flight` requests in flight; CPU time per request of the
//! server, its children and the crowd; and the server's memory (PSS, with its children) while
//! it holds them, in all and per connection. A model the limits stop short of a count is
//! skipped there, with the limit named ([`crate::room`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use labkit::child::{Peer, explain_break, fd_args, this_binary};
use labkit::measure::cpu_ns_per_op;
use labkit::signals::Shutdown;
use labkit::{Better, CpuClock, LatencyRecorder, Measurement, Report, Size, Test, Verdict};
use nix::unistd::Pid;
use serde_json::json;

use crate::Plan;
use crate::block::Server;
use crate::crowd::Outcome;
use crate::load::{WARMUP_REQUESTS, variant};
use crate::memory::{main_thread_children, tree, tree_kib};
use crate::server::{ConnStats, Model};

/// Timed requests per block at a count, spread over its connections, each making at least one:
/// by default and with `--quick`.
pub const REQUESTS: Size = Size::new(2_000, 500, 2_000);
/// Blocks per model at each count, alternating: the fewest the verdict judges, whatever the
/// size, since holding 1,000 connections with a process each takes a while.
const BLOCKS: u64 = labkit::verdict::MIN_PAIRS as u64;

/// One model at one count, over all its blocks.
pub struct Held {
    pub model: Model,
    pub connections: u64,
    pub latency: LatencyRecorder,
    /// Per block: requests per second, and the server's memory per connection (KiB).
    pub rates: Vec<f64>,
    pub per_connection: Vec<f64>,
    /// Per block: the server's memory in all while holding them (KiB), and the time to get
    /// every connection accepted (ms).
    pub held_kib: Vec<f64>,
    pub connect_ms: Vec<f64>,
    pub cpu: Duration,
    pub requests: u64,
    pub elapsed: Duration,
    /// The server's records, and the requests the crowd's receipts confirmed.
    pub served: ConnStats,
    pub accepted: u64,
    pub confirmed: u64,
    /// The measurement of the memory per connection, once recorded.
    pub memory: Option<Measurement>,
}

/// What one block measured.
struct Block {
    outcome: Outcome,
    cpu: Duration,
    baseline_kib: u64,
    held_kib: u64,
    served: ConnStats,
    accepted: u64,
}

/// Step 5: for each count, the models that the limits let hold it, blocks alternating; the
/// others skipped with the limit that stops them. Returns every model's figures at every count.
pub fn run(
    report: &mut Report,
    models: &[Model],
    plan: &Plan,
    shutdown: &Shutdown,
) -> Result<Vec<Held>> {
    let mut all = Vec::new();
    for &n in &plan.connections {
        let mut held: Vec<Held> = Vec::new();
        for &model in models {
            match crate::room::limit_for(model, n) {
                Some(why) => report.skip(&format!("{} holds {n} connections", model.name()), why),
                None => held.push(Held::new(model, n)),
            }
        }
        for _ in 0..BLOCKS {
            for h in &mut held {
                shutdown.check()?;
                let block = hold(h.model, n, plan).with_context(|| {
                    format!("the {} server holding {n} connections", h.model.name())
                })?;
                h.add(block, n);
            }
        }
        all.extend(held);
    }
    for h in &mut all {
        h.memory = Some(record(report, h, plan));
    }
    check_served(report, &all, plan);
    Ok(all)
}

impl Held {
    fn new(model: Model, connections: u64) -> Held {
        Held {
            model,
            connections,
            latency: LatencyRecorder::new(),
            rates: Vec::new(),
            per_connection: Vec::new(),
            held_kib: Vec::new(),
            connect_ms: Vec::new(),
            cpu: Duration::ZERO,
            requests: 0,
            elapsed: Duration::ZERO,
            served: ConnStats::default(),
            accepted: 0,
            confirmed: 0,
            memory: None,
        }
    }

    fn add(&mut self, block: Block, n: u64) {
        let o = &block.outcome;
        for &ns in &o.round_trips {
            self.latency.record_ns(ns);
        }
        let timed = o.round_trips.len() as u64;
        self.rates.push(timed as f64 / o.timed.as_secs_f64());
        let grown = block.held_kib.saturating_sub(block.baseline_kib);
        self.per_connection.push(grown as f64 / n as f64);
        self.held_kib.push(block.held_kib as f64);
        self.connect_ms.push(o.connect.as_secs_f64() * 1e3);
        self.cpu += block.cpu;
        self.requests += timed;
        self.elapsed += o.timed;
        self.served += block.served;
        self.accepted += block.accepted;
        self.confirmed += o.confirmed;
    }
}

/// Timed requests on each of `n` connections in one block: as `--per-connection` asks, or the
/// block's requests spread over them.
pub fn per_connection(plan: &Plan, n: u64) -> u64 {
    plan.held_per_connection
        .unwrap_or((plan.sweep_requests / n).max(1))
}

/// One block: a fresh server holding `n` connections from a fresh crowd.
fn hold(model: Model, n: u64, plan: &Plan) -> Result<Block> {
    let (server, peer) = Server::start(model, plan, ("--connections", n), &|| true)?;
    let pid = peer.pid().as_raw() as u32;
    if model == Model::ForkPerConnection {
        // The warm-up's process ends just after its receipt: the baseline is read without it.
        let gone = Instant::now() + Duration::from_secs(1);
        while !main_thread_children(pid).is_empty() && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let (baseline_kib, ..) = tree_kib(pid);
    let (report_rx, report_tx) = io::pipe().context("pipe (the crowd's report)")?;
    let (go_rx, go_tx) = io::pipe().context("pipe (go-ahead)")?;
    let crowd = start_crowd(n, plan, server.addr.port(), report_tx, go_rx)?;
    // Either peer's death explains a broken step: both are watched.
    let mut peers = [peer, crowd];
    let steps = drive_crowd(&mut peers, pid, File::from(OwnedFd::from(report_rx)), go_tx);
    let (held_kib, cpu, outcome) = match steps {
        Ok(figures) => figures,
        Err(e) => return Err(explain_break(&mut peers, e)),
    };
    let [peer, crowd] = peers;
    crowd.finish().context("the crowd")?;
    let (accepted, served) = ConnStats::total(&server.stop(peer)?);
    Ok(Block {
        outcome: Outcome::decode(&outcome)?,
        cpu,
        baseline_kib,
        held_kib,
        served,
        accepted,
    })
}

/// Starts the crowd: this binary again, in the role `crowd`, with the write end of its report
/// pipe and the read end of its go-ahead pipe.
fn start_crowd(
    n: u64,
    plan: &Plan,
    port: u16,
    report: io::PipeWriter,
    go: io::PipeReader,
) -> Result<Peer> {
    let fds = [report.as_fd(), go.as_fd()];
    let mut command = this_binary("crowd")?;
    command.args(fd_args(&fds));
    for (flag, value) in [
        ("--port", u64::from(port)),
        ("--connections", n),
        ("--in-flight", plan.in_flight),
        ("--per-connection", per_connection(plan, n)),
        ("--bytes", plan.bytes as u64),
    ] {
        command.args([flag, &value.to_string()]);
    }
    Peer::start(command, &fds)
}

/// Follows the crowd through its steps: once it holds every connection, reads the server's
/// memory and the CPU time of the server, its children and the crowd; again after the timed
/// requests. Returns the larger memory, the CPU time of the timed requests and the crowd's report.
fn drive_crowd(
    peers: &mut [Peer; 2],
    server: u32,
    mut report: File,
    mut go: io::PipeWriter,
) -> io::Result<(u64, Duration, Vec<u8>)> {
    let crowd = peers[1].pid();
    let mut step = |report: &mut File| -> io::Result<(u64, Duration)> {
        let mut byte = [0u8; 1];
        report.read_exact(&mut byte)?;
        let figures = (tree_kib(server).0, tree_cpu(server, crowd));
        go.write_all(b".")?;
        Ok(figures)
    };
    let (held, cpu_before) = step(&mut report)?;
    let (after, cpu_after) = step(&mut report)?;
    let mut rest = Vec::new();
    report.read_to_end(&mut rest)?;
    Ok((held.max(after), cpu_after.saturating_sub(cpu_before), rest))
}

/// The CPU time the server, its children and the crowd have used.
fn tree_cpu(server: u32, crowd: Pid) -> Duration {
    let pids = tree(server).map(|p| Pid::from_raw(p as i32));
    std::iter::once(crowd)
        .chain(pids)
        .filter_map(|p| CpuClock::of_process(p).ok())
        .sum()
}

/// Writes one model's figures at one count into the Report; returns the memory per connection.
fn record(report: &mut Report, h: &Held, plan: &Plan) -> Measurement {
    let (variant, name) = (variant(h.model), h.model.name());
    let mut config = json!({
        "connections": h.connections, "in_flight": plan.in_flight.min(h.connections),
        "per_connection": per_connection(plan, h.connections), "bytes": plan.bytes,
        "workers": if h.model.workers().is_some() { plan.workers } else { 0 },
    });
    if h.model == Model::Async {
        let threads = crate::tasks::runtime_threads();
        config["runtime"] = json!(format!("tokio multi-thread, {threads} threads"));
    }
    let per_request = cpu_ns_per_op(h.cpu, h.requests);
    let m = |what, unit, value, cpu| {
        Measurement::value(what, variant, name, config.clone(), unit, value, cpu)
    };
    let median = labkit::measure::median;
    report.measure(Measurement::histogram(
        "held_request",
        variant,
        name,
        config.clone(),
        &h.latency,
        per_request,
    ));
    let rate = h.requests as f64 / h.elapsed.as_secs_f64();
    report.measure(m("held_requests_per_s", "req/s", rate, per_request));
    report.measure(m("held_pss", "KiB", median(&h.held_kib), None));
    let per_connection = median(&h.per_connection);
    let memory = m("held_pss_per_connection", "KiB", per_connection, None);
    report.measure(memory.clone());
    report.measure(m("connect_all", "ms", median(&h.connect_ms), None));
    memory
}

/// Every request served once and intact: the crowd's count, the server's records, the receipts.
fn check_served(report: &mut Report, all: &[Held], plan: &Plan) {
    let mut problems = Vec::new();
    for h in all {
        let n = h.connections;
        // Each connection's first request, its timed ones; each block's warm-up connection.
        let per_block = n * (1 + per_connection(plan, n));
        let expected = BLOCKS * (per_block + WARMUP_REQUESTS);
        let accepted = BLOCKS * (n + 1);
        if h.confirmed != BLOCKS * per_block
            || h.served.requests != expected
            || h.accepted != accepted
            || h.served.failed + h.served.left_mid_request != 0
        {
            problems.push(format!(
                "{} at {n}: receipts confirmed {} requests of {}, the server served {} of \
                 {expected} on {} connections of {accepted}, {} failed",
                h.model.name(),
                h.confirmed,
                BLOCKS * per_block,
                h.served.requests,
                h.accepted,
                h.served.failed + h.served.left_mid_request
            ));
        }
    }
    if all.is_empty() {
        return;
    }
    let counts: Vec<String> = plan.connections.iter().map(u64::to_string).collect();
    report.check(
        "every connection held was served, every request once and intact",
        problems.is_empty(),
        if problems.is_empty() {
            format!(
                "{} connections held at once, every one served in each block; each request \
                 checked at both ends, each connection's count confirmed by the server's receipt",
                counts.join(", ")
            )
        } else {
            problems.join("; ")
        },
    );
}

/// The claim beyond the seed this step decides, and the count it is judged at.
const CLAIM: &str = "task.memory-per-connection";
const JUDGED_AT: u64 = 1_000;

/// `task.memory-per-connection`: at 1,000 connections, the async server's memory per
/// connection against thread-per-connection's, block pair by block pair. A run that did not
/// hold 1,000 connections with both says so, and why.
pub fn judge(report: &mut Report, plan: &Plan, all: &[Held]) {
    let at = |m: Model| {
        all.iter()
            .find(|h| h.model == m && h.connections == JUDGED_AT)
    };
    let (a, t) = (at(Model::Async), at(Model::ThreadPerConnection));
    if let (Some(a), Some(t)) = (a, t)
        && let (Some(am), Some(tm)) = (&a.memory, &t.memory)
    {
        let what = format!(
            "server memory per connection, {JUDGED_AT} connections held (PSS the server and its \
             children grew by, over the idle server, per connection)"
        );
        let test = Test::new(what, "KiB", Better::Lower, "smaller")
            .favoured("async", &a.per_connection)
            .other("thread-per-connection", &t.per_connection);
        report.claim_measured(CLAIM, test, [tm, am]);
        return;
    }
    let counts: Vec<String> = plan.connections.iter().map(u64::to_string).collect();
    let skipped: Vec<String> = [Model::ThreadPerConnection, Model::Async]
        .iter()
        .filter_map(|m| {
            let name = format!("{} holds {JUDGED_AT} connections", m.name());
            let check = report.checks.iter().find(|c| c.name == name)?;
            Some(format!("{}: {}", m.name(), check.detail))
        })
        .collect();
    let why = if !skipped.is_empty() {
        format!("skipped there: {}", skipped.join("; "))
    } else if plan.connections.contains(&JUDGED_AT) {
        "this run left out thread-per-connection or async (--variant)".to_owned()
    } else {
        format!(
            "this run held {} connections, not {JUDGED_AT} (`--connections {JUDGED_AT}`, or \
             the default sweep, holds it)",
            counts.join(", ")
        )
    };
    let evidence = format!("not judged: it is judged at {JUDGED_AT} connections, and {why}");
    report.claim_observed(CLAIM, Verdict::Inconclusive, evidence);
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use labkit::report::Status;

    use super::*;

    fn plan() -> Plan {
        Plan::from_flags(&crate::Args::parse_from(["sockets", "--quick"])).unwrap()
    }

    /// A model at `n` whose blocks measured `per_connection` KiB, its counts as a clean run's.
    fn held(model: Model, n: u64, per_connection: &[f64], plan: &Plan) -> Held {
        let mut h = Held::new(model, n);
        h.per_connection = per_connection.to_vec();
        let per_block = n * (1 + super::per_connection(plan, n));
        h.confirmed = BLOCKS * per_block;
        h.served.requests = BLOCKS * (per_block + WARMUP_REQUESTS);
        h.accepted = BLOCKS * (n + 1);
        let (v, name) = (variant(model), model.name());
        let kib = median(per_connection);
        h.memory = Some(Measurement::value(
            "m",
            v,
            name,
            json!({}),
            "KiB",
            kib,
            None,
        ));
        h
    }

    fn median(v: &[f64]) -> f64 {
        labkit::measure::median(v)
    }

    #[test]
    fn the_claim_comes_out_either_way_at_1000_connections() {
        let plan = plan();
        for (async_kib, verdict) in [
            ([0.8, 0.9, 0.8], Verdict::Holds),
            ([20.0, 21.0, 22.0], Verdict::DoesNotHold),
        ] {
            let all = [
                held(Model::ThreadPerConnection, 1000, &[13.0, 13.5, 13.6], &plan),
                held(Model::Async, 1000, &async_kib, &plan),
            ];
            let mut report = Report::new("sockets");
            judge(&mut report, &plan, &all);
            assert_eq!(report.claims[0].verdict, verdict, "{:?}", report.claims[0]);
        }
    }

    #[test]
    fn a_request_missing_from_the_counts_fails_the_check() {
        let plan = plan();
        let good = held(Model::Prefork { workers: 8 }, 100, &[0.1; 3], &plan);
        let mut short = held(Model::Async, 100, &[0.1; 3], &plan);
        short.served.requests -= 1;
        for (all, status) in [([good], Status::Pass), ([short], Status::Fail)] {
            let mut report = Report::new("sockets");
            check_served(&mut report, &all, &plan);
            assert_eq!(report.checks[0].status, status, "{:?}", report.checks[0]);
        }
    }
}
