//! Exit codes, and the one `finish` every topic's `main` ends with.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every check passed (skips allowed) |
//! | 1 | a check failed, or the run broke (a dead peer, a failed system call) |
//! | 2 | bad usage: a flag out of range, a placement this machine cannot give |
//! | 130 / 143 | a clean shutdown after SIGINT / SIGTERM |
//!
//! A panic (101) or death by a signal is always a bug.

use std::io::{self, Write};
use std::process::ExitCode;

pub use crate::cli::{UsageError, usage};
use crate::report::Outcome;
use crate::signals::Interrupted;

/// Every check passed.
pub const OK: u8 = 0;
/// A check failed or the run broke.
pub const FAILED: u8 = 1;
/// Bad usage.
pub const USAGE: u8 = 2;

/// Maps a run's result to the exit code of docs/ARCHITECTURE.md, telling the user why on
/// stderr as `<topic>: error: <cause chain>`.
/// The `main` of every topic: a binary that is also its own child. Re-executed with `--role`
/// (see `child::Peer`), it plays the other side of an exchange (`child`); otherwise
/// it runs the lesson (`run`). Either way it ends through [`finish`], named after the package
/// (clap's command name).
pub fn dispatch<A: clap::CommandFactory>(
    args: A,
    role: impl Fn(&A) -> &crate::RoleArgs,
    run: impl FnOnce(A) -> anyhow::Result<Outcome>,
    child: impl FnOnce(A) -> anyhow::Result<Outcome>,
) -> ExitCode {
    let topic = A::command().get_name().to_owned();
    if role(&args).role.is_some() {
        finish(&format!("{topic} (child)"), child(args))
    } else {
        finish(&topic, run(args))
    }
}

/// The start of every topic's run: the SIGINT/SIGTERM handlers in place (so that a shutdown
/// still releases whatever the run makes), and an empty Report for `topic`.
pub fn start(topic: &str) -> anyhow::Result<(crate::Report, &'static crate::signals::Shutdown)> {
    use anyhow::Context;
    let shutdown = crate::signals::install().context("install SIGINT/SIGTERM handlers")?;
    Ok((crate::Report::new(topic), shutdown))
}

/// Ends a run: prints what went wrong, if anything, and gives the exit code.
pub fn finish(topic: &str, result: anyhow::Result<Outcome>) -> ExitCode {
    crate::names::settle();
    let mut stderr = io::stderr().lock();
    let code = match result {
        Ok(Outcome::Passed) => OK,
        Ok(Outcome::ChecksFailed) => {
            let _ = writeln!(stderr, "{topic}: a check failed (see the report above)");
            FAILED
        }
        Err(err) => {
            // After SIGINT/SIGTERM, whatever broke is the shutdown's doing: a poll cut short
            // (EINTR), a child killed by the same signal sent to the whole group.
            let signal = err
                .downcast_ref::<Interrupted>()
                .map(|i| i.0)
                .or_else(crate::signals::requested);
            if let Some(signal) = signal {
                let _ = writeln!(
                    stderr,
                    "{topic}: interrupted by {}; stopped cleanly, nothing left behind",
                    signal.as_str()
                );
                128 + signal as u8
            } else {
                let _ = writeln!(stderr, "{topic}: error: {err:#}");
                if let Some(note) = crate::limits::note(&err) {
                    let _ = writeln!(stderr, "{topic}: {note}");
                }
                let usage = err.is::<UsageError>();
                if usage { USAGE } else { FAILED }
            }
        }
    };
    ExitCode::from(code)
}
