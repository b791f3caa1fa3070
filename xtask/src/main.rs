//! `cargo xtask <command>`: the one entry point for running, checking and cleaning the lab.
//!
//! | command | what it does |
//! |---|---|
//! | `report [TOPIC…]` | build release, run every topic at default sizes, print the claims ledger, write report files |
//! | `ci` | `cargo fmt --check`, `cargo clippy -D warnings`, `cargo test --workspace`, then `verify` |
//! | `verify [TOPIC…]` | build release, run every topic `--quick --json`, check each Report and that nothing leaked |
//! | `clean` | remove what the ledger lists for creators that are dead, nothing else |
//!
//! Topics are discovered from the workspace (every binary crate under `crates/`), so a new topic
//! is run and verified without editing a list here. xtask makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`): a process a topic leaves behind is re-parented to xtask, which
//! sees it, reports it and kills it.

mod ci;
mod clean;
mod report;
mod verify;
mod workspace;

use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  report [TOPIC...]   run every topic (default sizes) and print the claims ledger
  ci                  fmt check, clippy -D warnings, cargo test --workspace, then verify
  verify [TOPIC...]   run every topic --quick --json; check Reports and leftovers
  clean               remove leftovers of dead creators listed in the ledger";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; `Ok(false)` means it ran and found a failure (already reported).
fn run() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return Ok(false);
    };
    workspace::become_subreaper()?;
    match command.as_str() {
        "report" => report::run(rest),
        "ci" => ci::run(),
        "verify" => verify::run(rest),
        "clean" => clean::run(),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(true)
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
