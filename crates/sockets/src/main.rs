//! # sockets: processes talk over sockets, threads can hand over memory; a server five ways
//!
//! **Claims** (from the seed, checked on this machine):
//! * `comm.process-needs-ipc`: processes have separate memory, so they need IPC (here,
//!   sockets) to communicate;
//! * `comm.threads-faster`: inter-thread communication is simpler and faster than IPC;
//! * `usecase.shared-data`: threads suit shared data and fast communication: an echo server
//!   built on a thread pool against the same server forking a process per connection;
//! * beyond the seed, `task.memory-per-connection`: at 1,000 connections an async server needs
//!   less memory per connection than thread-per-connection.
//!
//! **Steps**
//! 1. [`pingpong::run`]: a frame of `--bytes` (length, CRC-32, sequence number, payload) goes
//!    out and comes back over a Unix stream socketpair, a Unix stream socket at a path (in a
//!    fresh 0700 directory), a Unix datagram socketpair and TCP on 127.0.0.1 with
//!    `TCP_NODELAY`: between two processes and between two threads, and over crossbeam
//!    channels between threads; [`far::start`] shows how a child (this binary again, in a
//!    role: [`child::run`]) is started, what it inherits and how it finds its descriptors.
//!    Alternating blocks after a warm-up; both ends check every frame ([`wire`], [`channel`]).
//! 2. [`stream::run`]: the same contenders send `--total` bytes one way in 64 KiB frames; the
//!    far end checks each frame's number and checksum and counts them.
//! 3. [`boundaries::show`]: three writes to a stream socket come out as one read, three
//!    datagrams as three; a large write to a non-blocking socket takes only part of the buffer.
//! 4. [`load::run`]: an echo server on 127.0.0.1 ([`server`]), in a process of its own, built
//!    five ways: a unit per connection (fork-per-connection, thread-per-connection), a pool
//!    made before the load (prefork, thread-pool), and an async task per connection on a
//!    runtime thread per CPU ([`tasks`]); `--clients` client threads each make
//!    `--requests` requests per block ([`block::run`]), `--per-connection` per connection.
//!    Requests per second, latency, CPU time per request (server, its children and the
//!    clients) and the peak memory of the server with its children; a client that leaves
//!    mid-request is logged by the server, which carries on.
//! 5. [`sweep::run`]: every model holds 10, 100 and 1,000 connections at once
//!    (`--connections-up-to`, `--connections`), the pools multiplexing theirs with epoll
//!    ([`multiplex`]), driven by a client process with one epoll loop ([`crowd`]), `--in-flight`
//!    requests in flight; per count: time to accept them all, req/s, latency, CPU per request,
//!    memory per connection; a count the limits leave no room for is skipped ([`room`]).
//! 6. [`probe::child_memory`]: a child is handed the address of a fresh nonce in our memory;
//!    it reads its own memory there (`/proc/self/mem`) and finds no nonce, while the same
//!    nonce sent through a socketpair arrives.
//! 7. [`judge_claims`]: steps 1 and 2, block pair by block pair, decide `comm.threads-faster`
//!    once per placement (steps 1 and 2 run with both sides on one CPU, then on two; `--pin`
//!    narrows to one, `--pin none` is shown and not judged); step 4 decides
//!    `usecase.shared-data`, step 6 `comm.process-needs-ipc`; [`sweep::judge`], step 5,
//!    `task.memory-per-connection`.
//!
//! **Run it**: `cargo run --release -p sockets` (about two seconds), `-- --json` for the
//! Report, `-- --clients 32 --per-connection 1` for a server that mostly accepts.

mod block;
mod boundaries;
mod channel;
mod child;
mod contender;
mod crowd;
mod far;
mod load;
mod memory;
mod multiplex;
mod nonce;
mod pingpong;
mod probe;
mod room;
mod server;
mod stream;
mod sweep;
mod tasks;
mod wire;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use labkit::limits::{Ask, check};
use labkit::pin::{PinGuard, Placement};
use labkit::report::{format_bytes, placement_text};
use labkit::{
    Better, CommonArgs, Outcome, PinArgs, Report, RoleArgs, Size, Test, Variant, Verdict,
};

use contender::{Contender, Series};

/// Frame size for round trips (header included): by default, and the most `--bytes` accepts.
const BYTES: Size = Size::new(100, 100, 64 * 1024);
/// Round trips per contender, after a warm-up: by default, with `--quick`, and at the most.
const MESSAGES: Size = Size::new(4_000, 300, 10_000_000);
/// Bytes per stream block: by default, with `--quick`, and at the most.
const TOTAL: Size = Size::new(32 << 20, 1 << 20, 16 << 30);
/// The server under load: concurrent clients (their most is also that of `--workers`),
/// requests per client per block, requests per connection.
const CLIENTS: Size = Size::new(8, 8, 256);
const REQUESTS: Size = Size::new(200, 20, 1_000_000);
const PER_CONNECTION: Size = Size::new(20, 5, 1_000_000);
/// Many connections held at once: the sweep goes up to this many (10, 100, 1,000 …); one
/// count asked for is at most this many. Requests in flight across them.
const CONNECTIONS: Size = Size::new(1_000, 1_000, 1_000_000);
const IN_FLIGHT: Size = Size::new(64, 64, 4096);

#[derive(Parser, Debug)]
#[command(
    about = "Unix stream, datagram and TCP sockets between processes vs threads, and an echo \
             server under load: fork-per-connection, thread-per-connection, prefork, thread-pool, \
             async.",
    after_help = labkit::examples!(
        "",
        " -- --json | jq .claims",
        " -- --bytes 4096 --pin same",
        " -- --clients 32 --per-connection 1";
        "--pin places the round trips and streams; the server under load is left to the scheduler."
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    placing: PinArgs,

    /// Round trips per contender [default: 4000; --quick: 300; at most 10000000].
    #[arg(short = 'n', long, value_name = "N", value_parser = labkit::cli::bounded(1, MESSAGES.max))]
    messages: Option<u64>,

    /// Bytes per frame in round trips and requests, 16-byte header included [default: 100;
    /// from 16 to 64KiB].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(wire::HEADER as u64, BYTES.max))]
    bytes: Option<u64>,

    /// Bytes per stream block, e.g. `256MiB` [default: 32MiB; --quick: 1MiB; from 1 to 16GiB].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, TOTAL.max))]
    total: Option<u64>,

    /// Concurrent clients of the server [default: 8; from 1 to 256].
    #[arg(long, value_name = "K", value_parser = labkit::cli::bounded(1, CLIENTS.max))]
    clients: Option<u64>,

    /// Requests per client per block [default: 200; --quick: 20; from 1 to 1000000].
    #[arg(long, value_name = "M", value_parser = labkit::cli::bounded(1, REQUESTS.max))]
    requests: Option<u64>,

    /// Requests per connection: a client reconnects after this many; in step 5, timed requests
    /// on each connection held per block [default: 20, and in step 5 2000 requests spread over
    /// the connections; --quick: 5 and 500; from 1 to 1000000].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, PER_CONNECTION.max))]
    per_connection: Option<u64>,

    /// Threads of the thread-pool server, and processes of the prefork one [default: the
    /// number of clients; from 1 to 256].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, CLIENTS.max))]
    workers: Option<u64>,

    /// Hold N connections at once in step 5, and only N [default: the sweep of
    /// --connections-up-to; from 1 to 1000000].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, CONNECTIONS.max))]
    connections: Option<u64>,

    /// Step 5 holds 10, 100, 1000 … connections, up to N [default: 1000; from 10 to 1000000].
    #[arg(long, value_name = "N", conflicts_with = "connections",
          value_parser = labkit::cli::bounded(10, CONNECTIONS.max))]
    connections_up_to: Option<u64>,

    /// Requests in flight across the connections held in step 5 [default: 64; from 1 to 4096].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, IN_FLIGHT.max))]
    in_flight: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,

    #[command(flatten)]
    child: child::ChildArgs,
}

fn main() -> ExitCode {
    labkit::dispatch(Args::parse(), |a| &a.role, run, child::run)
}

/// The sizes of this run, after defaults, and the placement of one round of steps 1 and 2.
#[derive(Clone)]
struct Plan {
    messages: u64,
    bytes: usize,
    total: u64,
    blocks: u64,
    clients: u64,
    requests: u64,
    per_connection: u64,
    workers: u64,
    /// Step 5: the counts of connections held, requests in flight, timed requests per block.
    connections: Vec<u64>,
    in_flight: u64,
    sweep_requests: u64,
    held_per_connection: Option<u64>,
    placement: Placement,
    pin: labkit::Pin,
}

impl Plan {
    /// The sizes the flags ask for, or the defaults (smaller with `--quick`); placed by the
    /// scheduler until a round sets its placement.
    fn from_flags(args: &Args) -> Result<Plan> {
        let common = &args.common;
        let clients = common.size(args.clients, CLIENTS);
        Ok(Plan {
            messages: common.size(args.messages, MESSAGES),
            bytes: common.size(args.bytes, BYTES) as usize,
            total: common.size(args.total, TOTAL),
            blocks: common.blocks(),
            clients,
            requests: common.size(args.requests, REQUESTS),
            per_connection: common.size(args.per_connection, PER_CONNECTION),
            workers: args.workers.unwrap_or(clients),
            connections: match args.connections {
                Some(n) => vec![n],
                None => {
                    let up_to = common.size(args.connections_up_to, CONNECTIONS);
                    let tens = std::iter::successors(Some(10), |n| Some(n * 10));
                    tens.take_while(|&n| n <= up_to).collect()
                }
            },
            in_flight: common.size(args.in_flight, IN_FLIGHT),
            sweep_requests: common.size(None, sweep::REQUESTS),
            held_per_connection: args.per_connection,
            placement: Placement::choose(labkit::Pin::None)?,
            pin: labkit::Pin::None,
        })
    }

    /// Refuses (exit 2) clients and workers beyond the room the limits leave: a client thread
    /// and a server's thread or process per connection, and their sockets (measured here: 40
    /// descriptors with one client, 48 with sixteen; asked: a lower bound).
    /// A count of connections asked for (`--connections`) that a model chosen cannot hold
    /// here is refused too, naming the limit; the sweep skips such a model instead.
    fn check_limits(&self, args: &Args) -> Result<()> {
        let flags = format!("--clients {} --workers {}", self.clients, self.workers);
        check(&flags, Ask::Tasks(self.clients.max(self.workers)))?;
        check(&flags, Ask::Descriptors(self.clients + 24))?;
        let Some(n) = args.connections else {
            return Ok(());
        };
        for model in load::chosen(&args.common, self.workers) {
            if let Some(why) = room::limit_for(model, n) {
                let name = model.name();
                let ask =
                    format!("--connections {n} asks for {n} connections held by the {name} server");
                return Err(labkit::exit::usage(format!("{ask}, but {why}")));
            }
        }
        Ok(())
    }

    /// Writes the sizes into the Report's parameters.
    fn record(&self, report: &mut Report) {
        report.param("messages", self.messages);
        report.param("bytes", self.bytes);
        report.param("total", self.total);
        report.param("blocks", self.blocks);
        report.param("clients", self.clients);
        report.param("requests", self.requests);
        report.param("per_connection", self.per_connection);
        report.param("workers", self.workers);
        report.param("connections", serde_json::json!(self.connections));
        report.param("in_flight", self.in_flight);
    }
}

/// Steps 1 and 2 in one placement: each contender's round trips and streams.
struct Round {
    pin: labkit::Pin,
    latency: Vec<Series>,
    throughput: Vec<Series>,
}

fn run(args: Args) -> Result<Outcome> {
    let (mut report, shutdown) = labkit::start(env!("CARGO_PKG_NAME"))?;
    let common = &args.common;
    let plan = Plan::from_flags(&args)?;
    plan.check_limits(&args)?;
    plan.record(&mut report);
    let what = "round trips and streams";
    let placements = Placement::each_noted(&mut report, args.placing.pin, what)?;
    let contenders = Contender::chosen(common);
    let mut rounds = Vec::new();
    for (pin, placement) in placements {
        let at = Plan {
            pin,
            placement,
            ..plan.clone()
        };
        // The main thread is the near side of every exchange; the pin is undone after timing.
        let _pin = PinGuard::pin(placement.main).context("sched_setaffinity (main thread)")?;
        rounds.push(Round {
            pin,
            latency: pingpong::run(&mut report, &contenders, &at, shutdown)?,
            throughput: stream::run(&mut report, &contenders, &at, shutdown)?,
        });
    }
    boundaries::show(&mut report)?;
    let models = load::chosen(common, plan.workers);
    let servers = load::run(&mut report, &models, &plan, shutdown)?;
    let held = sweep::run(&mut report, &models, &plan, shutdown)?;
    // The probe's child is a process: with `--variant thread` there is nothing to probe.
    let separate = common
        .wants(Variant::Process)
        .then(probe::child_memory)
        .transpose()?;
    report.note_one_side(common);
    judge_claims(&mut report, &plan, &rounds, separate, &servers);
    sweep::judge(&mut report, &plan, &held);
    report.end(common.json)
}

/// Step 6: the claims, from this run's figures and what the probing child saw.
fn judge_claims(
    report: &mut Report,
    plan: &Plan,
    rounds: &[Round],
    separate: Option<(Verdict, String)>,
    servers: &[load::Figures],
) {
    let mut summary = format!("{}-byte round trips", plan.bytes);
    judge_transfers(report, plan, rounds, &mut summary);
    // A failed check means this run cannot say how the data travelled: no finding either way.
    if let Some((verdict, evidence)) = separate.filter(|_| report.passed()) {
        report.claim_observed("comm.process-needs-ipc", verdict, evidence);
    }
    load::judge(report, plan, servers, &mut summary);
    if report.passed() {
        summary.push_str("; every frame and request arrived");
    }
    report.conclude(summary);
}

/// `comm.threads-faster`, per judged placement, from the round trips and the streams; the
/// round trips' medians go into the summary.
fn judge_transfers(report: &mut Report, plan: &Plan, rounds: &[Round], summary: &mut String) {
    for round in rounds.iter().filter(|r| r.pin.judged()) {
        let place = placement_text(round.pin.as_str());
        let size = format_bytes(plan.bytes as u64);
        for (series, what, unit, better) in [
            (
                &round.latency,
                format!("round trip of {size}, {place}"),
                "ns",
                Better::Lower,
            ),
            (
                &round.throughput,
                format!("stream of 64 KiB frames, {place}"),
                "MiB/s",
                Better::Higher,
            ),
        ] {
            let Some((p, t)) = contender::socketpair_and_channel(series) else {
                continue;
            };
            let test = Test::new(what, unit, better, "faster")
                .favoured("threads over a channel", &t.blocks)
                .other("processes over a socketpair", &p.blocks);
            let figures = [&p.measurement, &t.measurement];
            let claim = report.claim_measured("comm.threads-faster", test, figures);
            claim.placement = Some(round.pin.as_str().to_owned());
        }
    }
    for round in rounds {
        if let Some((p, t)) = contender::socketpair_and_channel(&round.latency) {
            summary.push_str(&format!(
                "; {}: {} over a socketpair between processes, {} over a channel between threads",
                placement_text(round.pin.as_str()),
                p.p50_text(),
                t.p50_text(),
            ));
        }
    }
}

#[cfg(test)]
testkit::fuzz_test!(Args);
