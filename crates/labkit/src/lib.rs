//! `labkit`: the one shared library of the processes-vs-threads lab.
//!
//! Every topic binary (`pipes`, `shm`, `spawn`, …) uses the same pieces, so that each `main.rs`
//! can read like a textbook example and every run produces the same kind of [`Report`]:
//!
//! | module | what it gives a topic |
//! |---|---|
//! | [`cli`] | the common flags (`--json`, `--quick`, `--variant`; `--pin` where a topic places its sides) and the hidden child-role flags |
//! | [`report`] | the Report of docs/ARCHITECTURE.md (serde, both ways), its human rendering, and printing it |
//! | [`exit`] | exit codes, usage errors, interrupted runs, and the one `finish` every `main` calls |
//! | [`measure`] | latency histograms (ns), throughput, CPU time per operation |
//! | [`verdict`] | the one rule: block pairs, a confidence interval, holds / does-not-hold / inconclusive |
//! | [`names`] | names for kernel objects, their creator ledger, and private temporary directories |
//! | [`child`] | re-executed children that never outlive their parent, and liveness pipes |
//! | [`signals`] | SIGINT/SIGTERM as a flag (and a self-pipe for blocked calls) |
//! | [`pin`] | CPU placement from the process's allowed set |
//! | [`limits`] | which limit of the machine a failed creation met, its value, how to raise it |
//! | [`host`] | what machine the figures come from |
//! | [`procfs`] | parent, start time and children of a process, from `/proc` |
//!
//! The mechanism of each lesson lives in its topic crate, never here: `labkit` only measures,
//! checks and reports.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "this lab demonstrates Linux process and thread mechanisms (pidfd, PR_SET_PDEATHSIG, \
     /proc, POSIX IPC as Linux implements it) and builds only for Linux; see README.md, \
     'Platform notes', for what differs on macOS and Windows"
);

pub mod child;
pub mod cli;
pub mod exit;
pub mod host;
pub mod limits;
pub mod measure;
pub mod names;
pub mod pin;
pub mod procfs;
pub mod report;
pub mod signals;
pub mod verdict;

pub use cli::{CommonArgs, Pin, PinArgs, RoleArgs, Size, Variant};
pub use exit::{UsageError, dispatch, finish, start};
pub use measure::{CpuClock, LatencyRecorder};
pub use report::{Check, Claim, Measurement, Outcome, Report};
pub use signals::Interrupted;
pub use verdict::{Better, Test, Verdict};

/// The prefix of every name this project gives to a kernel object, temporary directory or ledger.
pub const PREFIX: &str = "pvt";
