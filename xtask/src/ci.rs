//! `cargo xtask ci`: the test command. Each stage must pass before the next runs: fmt,
//! clippy, tests, the loom model, verify, copy (a topic copied as the README says), eject
//! (every topic built offline), torture (small counts), the report (HTML and browser tests).

use anyhow::{Context, Result};

use crate::workspace::{cargo, root};

/// A stage after the cargo commands: its name, what it does (said as it starts), and the
/// function that runs it.
type Stage = (&'static str, &'static str, fn() -> Result<bool>);

/// The stages after fmt, clippy and test, in order.
const STAGES: [Stage; 6] = [
    (
        "loom",
        "cargo test -p shm --lib --release (RUSTFLAGS=--cfg loom)",
        loom,
    ),
    ("verify", "every topic's --quick run, checked", || {
        crate::verify::run(&[])
    }),
    // A topic copied as the README says, in a scratch copy of the workspace.
    (
        "copy",
        "pipes copied as the README says, then checked like the others",
        crate::copycheck::run,
    ),
    // Every topic as a standalone project, built offline (one shared target directory).
    (
        "eject --check",
        "every topic ejected and built offline",
        crate::eject::check_all,
    ),
    // Small counts: two kills and two signals per topic at random moments, eight copies at
    // once, the proof that clean removes only the dead's leftovers, and every topic once under
    // each resource limit (a few minutes).
    (
        "torture",
        "2 kills, 2 signals, 8 copies per topic; every topic under resource limits",
        || crate::torture::run(&["--limits".to_owned()]),
    ),
    // Last, so the browser's helper processes can never be taken for a topic's leftovers.
    (
        "report",
        "a quick bench, the HTML test and the browser test",
        crate::report::ci_stage,
    ),
];

pub fn run() -> Result<bool> {
    let cargo_stages: [(&str, &[&str]); 3] = [
        ("fmt", &["fmt", "--all", "--check"]),
        (
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("test", &["test", "--workspace"]),
    ];
    for (name, args) in cargo_stages {
        eprintln!("xtask ci: {name}: cargo {}", args.join(" "));
        let status = cargo()
            .args(args)
            .current_dir(root())
            .status()
            .with_context(|| format!("cargo {name}"))?;
        if !status.success() {
            eprintln!("xtask ci: {name} FAILED");
            return Ok(false);
        }
    }
    for (name, what, stage) in STAGES {
        eprintln!("xtask ci: {name} ({what})");
        if !stage()? {
            eprintln!("xtask ci: {name} FAILED");
            return Ok(false);
        }
    }
    eprintln!("xtask ci: every stage passed");
    Ok(true)
}

/// The shm ring's loom model: its own target directory (RUSTFLAGS would otherwise rebuild the
/// world), only the crate that has the model, few preemptions (a model's cost grows steeply
/// with each).
fn loom() -> Result<bool> {
    let status = cargo()
        .args(["test", "-p", "shm", "--lib", "--release"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root().join("target").join("loom"))
        .env("LOOM_MAX_PREEMPTIONS", "2")
        .current_dir(root())
        .status()
        .context("cargo test (loom)")?;
    Ok(status.success())
}
