//! The flags every topic shares, as clap `Args` to `#[command(flatten)]` into a topic's own.

use std::os::fd::RawFd;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// One of the seed's two sides, or a baseline with no concurrency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Two (or more) processes, talking through the kernel.
    Process,
    /// Two (or more) threads of one process, sharing its memory.
    Thread,
    /// One thread alone: a baseline with no concurrency.
    Serial,
}

impl Variant {
    /// The name used in Reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Process => "process",
            Variant::Thread => "thread",
            Variant::Serial => "serial",
        }
    }
}

/// Where the two sides of an exchange run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pin {
    /// Leave placement to the scheduler.
    #[default]
    None,
    /// Both sides on one CPU: every hand-off is a context switch.
    Same,
    /// The two sides on two different CPUs: every hand-off is a cross-CPU wake-up.
    Split,
}

impl Pin {
    /// The name used in Reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Pin::None => "none",
            Pin::Same => "same",
            Pin::Split => "split",
        }
    }
}

/// The flags of DESIGN.md that every topic accepts.
#[derive(Args, Clone, Debug, Default)]
pub struct CommonArgs {
    /// Print only the Report, as one JSON document on stdout (e.g. `--json | jq .claims`).
    #[arg(long)]
    pub json: bool,

    /// Use the smallest sizes that still exercise every path (for tests and `cargo xtask verify`).
    #[arg(long)]
    pub quick: bool,

    /// Run one side only; repeat to pick several (e.g. `--variant process --variant thread`).
    #[arg(long, value_enum, value_name = "SIDE")]
    pub variant: Vec<Variant>,

    /// Placement of the two sides: `none` (the scheduler decides), `same` (one CPU) or `split`
    /// (two CPUs, chosen from the CPUs this process may use).
    #[arg(long, value_enum, default_value_t = Pin::None, value_name = "PLACEMENT")]
    pub pin: Pin,
}

impl CommonArgs {
    /// Whether `variant` should run: every variant runs unless `--variant` picked some.
    pub fn wants(&self, variant: Variant) -> bool {
        self.variant.is_empty() || self.variant.contains(&variant)
    }
}

/// Hidden flags by which a topic re-executes itself as the other side of an exchange.
///
/// A learner never types these; [`crate::child::Peer::spawn`] writes them.
#[derive(Args, Clone, Debug, Default)]
pub struct RoleArgs {
    /// Run as a child in this role (internal).
    #[arg(long, hide = true)]
    pub role: Option<String>,

    /// A file descriptor inherited from the parent (internal, repeatable, in order).
    #[arg(long = "fd", hide = true)]
    pub fds: Vec<RawFd>,

    /// Pin this child to this CPU (internal).
    #[arg(long, hide = true)]
    pub cpu: Option<usize>,
}
