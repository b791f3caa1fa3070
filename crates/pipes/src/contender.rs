//! The three contenders of steps 1 and 2, what each one's measuring returns, and how the far
//! side of a pipe exchange is started: a child process, or a thread of ours.

use std::io::{PipeReader, PipeWriter};
use std::os::fd::AsFd;

use anyhow::{Context, Result};
use labkit::child::Peer;

use crate::far::Far;
use labkit::{CommonArgs, Measurement, Variant};

use crate::child;

/// Who talks to whom, through what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    ProcessPipe,
    ThreadPipe,
    ThreadChannel,
}

impl Contender {
    /// The contenders the flags ask for, in the order they run.
    pub fn chosen(common: &CommonArgs) -> Vec<Contender> {
        [
            Contender::ProcessPipe,
            Contender::ThreadPipe,
            Contender::ThreadChannel,
        ]
        .into_iter()
        .filter(|c| common.wants(c.variant()))
        .collect()
    }

    pub fn variant(self) -> Variant {
        match self {
            Contender::ProcessPipe => Variant::Process,
            Contender::ThreadPipe | Contender::ThreadChannel => Variant::Thread,
        }
    }

    pub fn mechanism(self) -> &'static str {
        match self {
            Contender::ProcessPipe | Contender::ThreadPipe => "pipe",
            Contender::ThreadChannel => "channel",
        }
    }

    /// `process/pipe`, `thread/channel`: for people.
    pub fn label(self) -> String {
        format!("{}/{}", self.variant().as_str(), self.mechanism())
    }
}

/// One contender's figures from one step: one per block (median round trip in ns, or MiB/s),
/// for the verdicts, and the measurement of all its blocks, as written to the Report.
pub struct Series {
    pub contender: Contender,
    pub blocks: Vec<f64>,
    pub measurement: Measurement,
}

/// The block figures and the measurements of the two contenders the claim sets against each
/// other, processes over a pipe and threads over a channel, if both ran.
pub fn process_vs_channel(series: &[Series]) -> Option<([&[f64]; 2], [&Measurement; 2])> {
    let find = |c: Contender| series.iter().find(|s| s.contender == c);
    let (p, t) = (
        find(Contender::ProcessPipe)?,
        find(Contender::ThreadChannel)?,
    );
    Some(([&p.blocks, &t.blocks], [&p.measurement, &t.measurement]))
}

/// Starts the far side of a pipe exchange: for [`Contender::ProcessPipe`] a child process in
/// `role` (with `args` after it), else a thread running `thread_work`, pinned to `cpu` if
/// given. Returns our two ends: we write to the far side's reader, and read its writer.
pub fn start_pipe_peer<T: Send + 'static>(
    contender: Contender,
    role: &str,
    args: &[String],
    cpu: Option<usize>,
    thread_work: impl FnOnce(PipeReader, PipeWriter) -> std::io::Result<T> + Send + 'static,
) -> Result<(PipeReader, PipeWriter, Far<T>)> {
    // Two pipes, one each way.
    let (their_rx, our_tx) = std::io::pipe().context("pipe")?;
    let (our_rx, their_tx) = std::io::pipe().context("pipe")?;
    if contender != Contender::ProcessPipe {
        let far = Far::thread(role, cpu, move || thread_work(their_rx, their_tx))?;
        return Ok((our_rx, our_tx, far));
    }
    // The far side is this binary again, in the role `role`. It inherits its two pipe ends at
    // the same descriptor numbers, named by `--fd` (it takes them back with
    // `args.role.take_fds()`); nothing else of ours reaches it, not even our memory, since
    // `exec` gives it a fresh image of the program. `Peer::start` sets the guards: the child
    // dies with us, ignores Ctrl-C (we decide when it ends), keeps exactly these two
    // descriptors open across `exec`, and is killed and reaped if we drop it early.
    let theirs = [their_rx.as_fd(), their_tx.as_fd()];
    let mut command = child::command(role, &theirs)?;
    if let Some(cpu) = cpu {
        command.args(["--cpu", &cpu.to_string()]);
    }
    command.args(args);
    let peer = Peer::start(command, &theirs)?;
    // The child has its copies now. Ours must go, or EOF would never reach either side.
    drop((their_rx, their_tx));
    Ok((our_rx, our_tx, Far::Process(peer)))
}
