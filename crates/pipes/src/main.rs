//! # pipes: processes talk through the kernel; threads can hand each other memory
//!
//! **Claims** (from the seed, checked on this machine):
//! * `comm.process-needs-ipc`: processes have separate memory, so they need IPC (here, pipes)
//!   to communicate;
//! * `comm.threads-faster`: inter-thread communication is simpler and faster than IPC.
//!
//! **Steps**
//! 1. [`latency::run`]: three contenders send `--messages` numbered messages of `--bytes` bytes
//!    back and forth: two processes over two pipes, two threads over two pipes, and two threads
//!    over two crossbeam channels. They run in alternating blocks after a warm-up; each round
//!    trip is timed into a histogram, and both ends check every message.
//! 2. [`throughput::run`]: the same three move a `--total`-byte stream in 64 KiB writes, in alternating
//!    blocks; the reader's CRC-32 and byte count are checked against the writer's.
//! 3. [`show_eof_needs_every_writer`]: a child writes and exits, but our own copy of the write
//!    end keeps the pipe open, so no EOF comes (a hang guard shows it); closing it gives EOF.
//! 4. [`show_epipe`]: once the only reader has exited, a write fails with EPIPE.
//! 5. [`show_fifo`]: a child that inherited no pipe finds one by name: a FIFO.
//! 6. [`probe_child_memory`]: a child is handed the address of a fresh nonce in our memory;
//!    it reads its own memory there (`/proc/self/mem`) and finds no nonce, while the same
//!    nonce sent through a pipe arrives: what it knows of us came through the kernel.
//! 7. [`judge_claims`]: steps 1 and 2, block pair by block pair, decide `comm.threads-faster`
//!    once per placement (one CPU, two CPUs); step 6 decides `comm.process-needs-ipc`.
//!
//! Steps 1 and 2 run once per placement: both sides on one CPU (each hand-off a context
//! switch), then on two (each a cross-CPU wake-up); `--pin same|split` runs one of them, and
//! `--pin none` leaves placement to the scheduler, whose figures are shown but not judged.
//!
//! The other process is always this binary, re-executed with a hidden `--role` ([`child`]);
//! it gets its pipe ends by inheritance and dies with us (`PR_SET_PDEATHSIG`). The first one
//! starts in [`contender::start_pipe_peer`], where every step of that is explained.
//!
//! **Run it**: `cargo run --release -p pipes` (about two seconds), `-- --json` for the Report,
//! `-- --pin same --bytes 4096` to put both sides on one CPU with larger messages.
//!
//! The output gives, per contender, the round-trip p50/p99, the stream's throughput and the
//! CPU time per operation (both sides counted), then the checks and the claims' verdicts.

mod child;
mod contender;
mod far;
mod latency;
mod nonce;
mod pingpong;
mod semantics;
mod stream;
mod throughput;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::nonce::{self as probe, Nonce, PROBE_LEN, Probe};
use anyhow::{Context, Result, bail};
use clap::Parser;
use labkit::child::{HANG_GUARD, Peer, liveness};
use labkit::names::PrivateDir;
use labkit::pin::{PinGuard, Placement};
use labkit::report::{format_bytes, placement_text};
use labkit::signals::Shutdown;
use labkit::{
    Better, CommonArgs, Outcome, Pin, PinArgs, Report, RoleArgs, Size, Test, Variant, Verdict,
};

use contender::{Contender, Series, process_vs_channel};
use pingpong::HEADER;
use semantics::{Arrival, Next};

/// Round trips per contender: by default, with `--quick`, and the most `--messages` accepts.
const MESSAGES: Size = Size::new(20_000, 600, 10_000_000);
/// Message size by default (the smallest holds the sequence number); the largest is 1 MiB.
const BYTES: Size = Size::new(64, 64, 1 << 20);
/// Bytes per stream: by default, with `--quick`, and the largest `--total` (16 GiB).
const TOTAL: Size = Size::new(32 << 20, 1 << 20, 16 << 30);
/// Round trips per contender before timing starts.
const WARMUP: u64 = 200;
/// How long the EOF demo waits for an EOF that cannot come.
const TRAP_WAIT: Duration = Duration::from_millis(250);
/// Messages through the FIFO.
const FIFO_MESSAGES: u64 = 100;

#[derive(Parser, Debug)]
#[command(
    about = "Pipes between processes vs pipes and channels between threads: round trips, \
             throughput, EOF and EPIPE, each checked.",
    after_help = labkit::examples!(
        "",
        " -- --json | jq .claims",
        " -- --messages 100000 --bytes 4096 --pin same",
        " -- --variant process --total 256MiB"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    placing: PinArgs,

    /// Round trips per contender [default: 20000; --quick: 600; at most 10000000].
    #[arg(short = 'n', long, value_name = "N", value_parser = labkit::cli::bounded(1, MESSAGES.max))]
    messages: Option<u64>,

    /// Bytes per message, sequence number included [default: 64; from 8 to 1MiB].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(HEADER as u64, BYTES.max))]
    bytes: Option<u64>,

    /// Bytes per stream, e.g. `256MiB` [default: 32MiB; --quick: 1MiB; from 1 to 16GiB].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, TOTAL.max))]
    total: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,

    /// The FIFO a `fifo-writer` child opens (internal).
    #[arg(long, hide = true)]
    fifo: Option<PathBuf>,
}

fn main() -> ExitCode {
    labkit::dispatch(Args::parse(), |a| &a.role, run, child::run)
}

/// The sizes of this run, after defaults.
struct Plan {
    messages: u64,
    bytes: usize,
    total: u64,
    blocks: u64,
}

/// Where both sides of one round of steps 1 and 2 ran.
#[derive(Clone, Copy)]
struct Placed {
    pin: Pin,
    cpus: Placement,
}

/// Steps 1 and 2 at one placement: each contender's figures.
struct Round {
    at: Placed,
    latency: Vec<Series>,
    throughput: Vec<Series>,
}

fn run(args: Args) -> Result<Outcome> {
    let (mut report, shutdown) = labkit::start(env!("CARGO_PKG_NAME"))?;
    let common = &args.common;
    let messages = common.size(args.messages, MESSAGES);
    let plan = Plan {
        messages,
        bytes: common.size(args.bytes, BYTES) as usize,
        total: common.size(args.total, TOTAL),
        blocks: common.blocks().min(messages),
    };
    report.param("messages", plan.messages);
    report.param("bytes", plan.bytes);
    report.param("total", plan.total);
    report.param("blocks", plan.blocks);
    let what = "round trips and streams";
    let placements = Placement::each_noted(&mut report, args.placing.pin, what)?;

    let contenders = Contender::chosen(common);
    let mut rounds = Vec::new();
    for (pin, cpus) in placements {
        let at = Placed { pin, cpus };
        // The main thread is one side of every exchange; the pin is undone after the timing.
        let _pin = PinGuard::pin(cpus.main).context("sched_setaffinity (main thread)")?;
        rounds.push(Round {
            at,
            latency: latency::run(&mut report, &contenders, &plan, at, shutdown)?,
            throughput: throughput::run(&mut report, &contenders, &plan, at, shutdown)?,
        });
    }
    let mut separate = None;
    if common.wants(Variant::Process) {
        show_eof_needs_every_writer(&mut report)?;
        show_epipe(&mut report, plan.bytes)?;
        show_fifo(&mut report, shutdown)?;
        separate = Some(probe_child_memory()?);
    }
    report.note_one_side(common);
    judge_claims(&mut report, &plan, &rounds, separate);
    report.end(common.json)
}

/// Step 3: the classic trap. A reader gets EOF only when every write end is closed, and the
/// parent's own copy of the write end counts.
fn show_eof_needs_every_writer(report: &mut Report) -> Result<()> {
    let (mut reader, writer) = std::io::pipe().context("pipe")?;
    // A child that inherits only the write end (see `contender::start_pipe_peer`).
    let command = child::command("write-hello", &[writer.as_fd()])?;
    let peer = Peer::start(command, &[writer.as_fd()])?;
    // The child writes "hello" and exits. We keep `writer` open on purpose: the bug.
    let mut buf = [0u8; 64];
    let first =
        semantics::read_within(&mut reader, &mut buf, HANG_GUARD).context("read the pipe")?;
    peer.finish()?;
    let trapped =
        semantics::read_within(&mut reader, &mut buf, TRAP_WAIT).context("read the pipe")?;
    // The fix: close our copy. Now no write end is left anywhere, and EOF comes at once.
    drop(writer);
    let fixed =
        semantics::read_within(&mut reader, &mut buf, HANG_GUARD).context("read the pipe")?;
    let held = matches!(first, Next::Data(5)) && trapped == Next::Nothing && fixed == Next::Eof;
    report.check(
        "EOF comes only once every write end is closed",
        held,
        format!(
            "the child wrote 5 bytes and exited: {first}; with our own copy of the write end \
             still open: {trapped} within {} ms; once we closed it: {fixed}",
            TRAP_WAIT.as_millis(),
        ),
    );
    Ok(())
}

/// Step 4: writing to a pipe whose only reader has gone.
fn show_epipe(report: &mut Report, bytes: usize) -> Result<()> {
    let (reader, mut writer) = std::io::pipe().context("pipe")?;
    // A child that inherits only the read end, and reads one message of `bytes` bytes.
    let mut command = child::command("read-one", &[reader.as_fd()])?;
    command.args(["--bytes", &bytes.to_string()]);
    let peer = Peer::start(command, &[reader.as_fd()])?;
    drop(reader); // Only the child may read; our copy would keep the pipe "read" forever.
    let mut msg = vec![0u8; bytes];
    pingpong::fill(&mut msg, 0);
    writer
        .write_all(&msg)
        .context("write to the pipe while the child reads it")?;
    peer.finish()?;
    let ignored = semantics::sigpipe_ignored().context("sigaction(SIGPIPE)")?;
    let after = writer.write_all(&msg);
    let epipe = after.as_ref().err().and_then(std::io::Error::raw_os_error) == Some(libc::EPIPE);
    report.check(
        "writing to a pipe with no reader fails with EPIPE",
        epipe && ignored,
        format!(
            "the child read one message and exited; our next write returned {}; SIGPIPE is {} \
             (Rust ignores it before main, or the write would have killed us)",
            after.map_or_else(|e| format!("{e}"), |()| "success".to_owned()),
            if ignored { "ignored" } else { "NOT ignored" }
        ),
    );
    Ok(())
}

/// Step 5: a FIFO, for processes that share no descriptor.
fn show_fifo(report: &mut Report, shutdown: &Shutdown) -> Result<()> {
    // The FIFO's name lives in a fresh 0700 directory, ledgered, removed on every path out.
    let dir = PrivateDir::create()?;
    let path = dir.path().join("fifo");
    semantics::make_fifo(&path).with_context(|| format!("mkfifo {}", path.display()))?;
    let fifo =
        semantics::open_fifo_reader(&path).with_context(|| format!("open {}", path.display()))?;
    // The child gets no pipe, only the FIFO's path and a liveness pipe so we notice its death.
    let (alive, watch) = liveness().context("pipe (liveness)")?;
    let mut command = child::command("fifo-writer", &[alive.as_fd()])?;
    command.arg("--fifo").arg(&path);
    command.args(["--messages", &FIFO_MESSAGES.to_string()]);
    let mut peer = Peer::start(command, &[alive.as_fd()])?;
    drop(alive);
    match semantics::wait_for_writer(&fifo, watch.as_fd(), HANG_GUARD).context("poll the FIFO")? {
        Arrival::Data => {}
        Arrival::WriterGone => return Err(peer.death("it left before writing to the FIFO")),
        Arrival::Timeout => bail!(
            "hang guard: no data on the FIFO after {} s",
            HANG_GUARD.as_secs()
        ),
    }
    shutdown.check()?;
    // Both ends are open: the name has done its job. The pipe lives on without it.
    std::fs::remove_file(&path).with_context(|| format!("unlink {}", path.display()))?;
    semantics::set_blocking(&fifo).context("fcntl(F_SETFL)")?;
    let count = semantics::read_messages(&fifo, HEADER * 2).map_err(|e| peer.death(e))?;
    peer.finish()?;
    report.check(
        "a FIFO joins processes by name",
        count == FIFO_MESSAGES,
        format!(
            "the child opened the FIFO by its path, having inherited no pipe; {count} of \
             {FIFO_MESSAGES} numbered messages arrived in order; the name was unlinked once both \
             ends were open"
        ),
    );
    Ok(())
}

/// Step 6: what a child sees of our memory. We hand it the address of a fresh nonce; it reads
/// its own memory there, then receives the nonce through a pipe and reports both.
fn probe_child_memory() -> Result<(Verdict, String)> {
    let mut nonce = Nonce::blank();
    let (their_rx, mut our_tx) = std::io::pipe().context("pipe")?;
    let (mut our_rx, their_tx) = std::io::pipe().context("pipe")?;
    // A child with a pipe each way, and the nonce's address in our memory (`--probe`).
    let theirs = [their_rx.as_fd(), their_tx.as_fd()];
    let mut command = child::command("probe", &theirs)?;
    command.args(nonce.args());
    let mut peer = Peer::start(command, &theirs)?;
    drop((their_rx, their_tx)); // The child's now; ours would hide its death from us.
    // Written only now: a copy of our memory made at the child's creation holds zeros.
    nonce.fill().context("read /dev/urandom")?;
    let mut reply = [0u8; PROBE_LEN];
    our_tx
        .write_all(nonce.bytes())
        .and_then(|()| our_rx.read_exact(&mut reply))
        .map_err(|e| peer.death(e))?;
    peer.finish()?;
    Ok(probe::judge(&nonce, &Probe::decode(&reply), "a pipe"))
}

/// Step 7: the claims, from this run's figures: one finding per placement and measure (the
/// scheduler's placement is shown, not judged), and what the probing child saw.
fn judge_claims(
    report: &mut Report,
    plan: &Plan,
    rounds: &[Round],
    separate: Option<(Verdict, String)>,
) {
    let (size, total) = (format_bytes(plan.bytes as u64), format_bytes(plan.total));
    let mut summary = format!(
        "{} round trips of {size} and {} streams of {total} per contender",
        plan.messages, plan.blocks,
    );
    for round in rounds.iter().filter(|r| r.at.pin.judged()) {
        let place = placement_text(round.at.pin.as_str());
        for (series, what, unit, better) in [
            (
                &round.latency,
                format!("round trip of {size}, {place}"),
                "ns",
                Better::Lower,
            ),
            (
                &round.throughput,
                format!("stream of {total} in 64 KiB writes, {place}"),
                "MiB/s",
                Better::Higher,
            ),
        ] {
            let Some(([p, t], compares)) = process_vs_channel(series) else {
                continue;
            };
            let test = Test::new(what, unit, better, "faster")
                .favoured("threads over a channel", t)
                .other("processes over pipes", p);
            if better == Better::Lower {
                summary.push_str(&format!("; per round trip on {place}, {}", test.headline()));
            }
            report
                .claim_measured("comm.threads-faster", test, compares)
                .placement = Some(round.at.pin.as_str().to_owned());
        }
    }
    // A failed check means this run cannot say how the data travelled: no finding either way.
    if let Some((verdict, evidence)) = separate.filter(|_| report.passed()) {
        report.claim_observed("comm.process-needs-ipc", verdict, evidence);
    }
    if report.passed() {
        summary.push_str("; every message and byte arrived");
    }
    report.conclude(summary);
}

#[cfg(test)]
testkit::fuzz_test!(Args);
