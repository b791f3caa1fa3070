//! `cargo xtask <command>`: the one entry point for running, checking and cleaning the lab.
//!
//! | command | what it does |
//! |---|---|
//! | `report` | a bench (3 runs at default sizes), the claims ledger across runs, `report.md`, `report.html` with plots, a screenshot |
//! | `bench` | every topic R times, saved to `target/lab/<timestamp>/` with `summary.json` |
//! | `compare A B` | two saved benches: figures that moved beyond both spreads, verdicts that changed |
//! | `eject TOPIC DIR` | one topic as a standalone Cargo project (`--check`: all, built offline) |
//! | `ci` | fmt, clippy, tests, loom, `verify`, `eject --check`, `torture` (small), the report's HTML and browser tests |
//! | `verify [TOPIC…]` | build release, run every topic `--quick --json`, check each Report and that nothing leaked |
//! | `clean` | remove what the ledger lists for creators that are dead, nothing else |
//! | `torture [TOPIC…]` | SIGKILL and SIGINT/SIGTERM every topic at random moments, run copies at once, prove `clean` |
//!
//! Topics are discovered from the workspace (every binary crate under `crates/`), so a new topic
//! is run and verified without editing a list here. xtask makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`): a process a topic leaves behind is re-parented to xtask, which
//! sees it, reports it and kills it.

mod bench;
mod browser;
mod ci;
mod claims;
mod clean;
mod compare;
mod copycheck;
mod decisions;
mod declared;
#[cfg(test)]
mod documented;
mod eject;
#[cfg(test)]
mod fixtures;
mod gather;
mod held;
mod html;
mod leftovers;
mod markdown;
mod perf;
mod plots;
mod report;
mod summary;
mod text;
mod torture;
mod verify;
mod workspace;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  report [FLAGS]      bench (3 runs, default sizes), print the claims ledger, write
                      report.md, report.html and report.png (--from DIR, --full, --quick)
  bench [FLAGS]       run every topic --runs N times (default 5), save to target/lab/<time>/
  compare A B         two saved benches: moved figures and changed verdicts
  eject TOPIC DIR     write one topic as a standalone Cargo project (--check: all of them)
  ci                  fmt, clippy, tests, loom, verify, copy-check, eject --check, torture,
                      report checks
  verify [TOPIC...]   run every topic --quick --json; check Reports and leftovers
  copy-check          copy pipes as the README says, in a scratch workspace; check the copy
  clean               remove leftovers of dead creators listed in the ledger
  torture [FLAGS] [TOPIC...]
                      kill and signal every topic at random moments, run copies at once,
                      prove clean (see `cargo xtask torture --help`)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => ("", &[][..]),
    };
    let result = match command {
        "report" => report::run(rest),
        "bench" => bench::run(rest),
        "compare" => compare::run(rest),
        "eject" => eject::run(rest),
        "ci" if rest.is_empty() => ci::run(),
        "copy-check" if rest.is_empty() => copycheck::run(),
        "verify" => verify::run(rest),
        "clean" if rest.is_empty() => clean::run(),
        "torture" => torture::run(rest),
        "torture-leave-one" => torture::leave_one(),
        "-h" | "--help" | "help" => {
            text::say(USAGE);
            Ok(true)
        }
        "" => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
        _ => {
            // Bad usage: exit 2, as every binary of the lab does.
            eprintln!("xtask: unknown command `{}`\n\n{USAGE}", args.join(" "));
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
