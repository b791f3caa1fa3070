//! The child side: this binary re-executed in a role (`echo`, `sink`, `server`, `crowd`,
//! `probe`); the parent starts it in [`crate::far::start`], [`crate::block`], [`crate::sweep`]
//! and [`crate::probe`].

use std::fs::File;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use labkit::exit::usage;
use labkit::{Outcome, Variant};

use crate::contender::Mech;
use crate::far::{self, Target};
use crate::load::ModelArg;
use crate::{Args, BYTES, CLIENTS, IN_FLIGHT, crowd, load, probe, server};

/// The flags only a child is given (internal, hidden from `--help`); its descriptors and role
/// come in `RoleArgs`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ChildArgs {
    /// The transport a child's far side uses (internal).
    #[arg(long, hide = true, value_enum)]
    transport: Option<Mech>,

    /// The socket path a child connects to (internal).
    #[arg(long, hide = true)]
    path: Option<PathBuf>,

    /// The loopback TCP port a child connects to (internal).
    #[arg(long, hide = true)]
    port: Option<u16>,

    /// The server model of a `server` child (internal).
    #[arg(long, hide = true, value_enum)]
    model: Option<ModelArg>,
}

/// The other side of each exchange, when this binary runs as a child (`--role`).
pub fn run(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    let mut fds = args.role.take_fds()?.into_iter();
    let role = args.role.role.clone().unwrap_or_default();
    match role.as_str() {
        "echo" | "sink" => {
            // Held until we exit: its closing tells the parent we are gone.
            let _alive = fds.next().context("no liveness fd passed")?;
            let mech = args.child.transport.context("--transport is required")?;
            let target = match (args.child.path, args.child.port) {
                (Some(p), _) => Target::Path(p),
                (None, Some(p)) => Target::Port(p),
                _ => Target::Inherited,
            };
            let echo = role == "echo";
            let max = far::max_frame(echo, args.common.size(args.bytes, BYTES) as usize);
            far::work(mech, echo, max, fds.next(), target)
                .with_context(|| format!("{role} over {}", mech.name()))?;
        }
        "server" => serve(&args, fds.next(), fds.next(), fds.next())?,
        "crowd" => {
            let report = File::from(fds.next().context("no report fd passed")?);
            let go = File::from(fds.next().context("no go-ahead fd passed")?);
            let ask = crowd::Ask {
                port: args.child.port.context("--port is required")?,
                connections: args.connections.context("--connections is required")? as usize,
                in_flight: args.common.size(args.in_flight, IN_FLIGHT) as usize,
                per_connection: args
                    .per_connection
                    .context("--per-connection is required")?,
                bytes: args.common.size(args.bytes, BYTES) as usize,
            };
            crowd::run(&ask, report, go)?;
        }
        "probe" => probe::answer(
            fds.next().context("no socket fd passed")?,
            args.role.probe_addr()?,
        )?,
        other => return Err(usage(format!("unknown role `{other}`"))),
    }
    Ok(Outcome::Passed)
}

/// The `server` role: serves on the inherited `listener` until `stop` reads EOF, writing a
/// record per connection to `stats`.
fn serve(
    args: &Args,
    listener: Option<OwnedFd>,
    stop: Option<OwnedFd>,
    stats: Option<OwnedFd>,
) -> Result<()> {
    let listener = TcpListener::from(listener.context("no listener fd passed")?);
    let stop = stop.context("no stop fd passed")?;
    let stats = File::from(stats.context("no stats fd passed")?);
    // A server may hold many connections: a descriptor each.
    labkit::limits::raise_nofile().context("setrlimit(RLIMIT_NOFILE)")?;
    let workers = args.common.size(args.workers, CLIENTS) as usize;
    let model = args
        .child
        .model
        .context("--model is required")?
        .model(workers);
    if load::variant(model) == Variant::Process {
        // The fork rule: the process that forks has no other thread.
        let threads = labkit::procfs::thread_count(std::process::id());
        if threads != Some(1) {
            bail!("a forking server must have one thread, it has {threads:?}");
        }
    }
    let max = args.common.size(args.bytes, BYTES) as usize;
    server::run(model, max, listener, stop, stats)
        .with_context(|| format!("serve as the {} server", model.name()))?;
    Ok(())
}
