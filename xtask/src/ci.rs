//! `cargo xtask ci`: the test command. Each stage must pass before the next runs: fmt,
//! clippy, tests, the loom model, verify, copy (a topic copied as the README says), eject
//! (every topic built offline), torture (small counts), the report (HTML and browser tests).

use anyhow::{Context, Result};

use crate::workspace::{cargo, root};

pub fn run() -> Result<bool> {
    let stages: [(&str, &[&str]); 3] = [
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
    for (name, args) in stages {
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
    // The shm ring's loom model: its own target directory (RUSTFLAGS would otherwise rebuild
    // the world), only the crate that has the model, few preemptions (STYLE.md).
    eprintln!("xtask ci: loom: cargo test -p shm --lib --release (RUSTFLAGS=--cfg loom)");
    let status = cargo()
        .args(["test", "-p", "shm", "--lib", "--release"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root().join("target").join("loom"))
        .env("LOOM_MAX_PREEMPTIONS", "2")
        .current_dir(root())
        .status()
        .context("cargo test (loom)")?;
    if !status.success() {
        eprintln!("xtask ci: loom FAILED");
        return Ok(false);
    }
    eprintln!("xtask ci: verify");
    if !crate::verify::run(&[])? {
        eprintln!("xtask ci: verify FAILED");
        return Ok(false);
    }
    // A topic copied as the README says, in a scratch copy of the workspace.
    eprintln!("xtask ci: copy (pipes copied as the README says, then checked like the others)");
    if !crate::copycheck::run()? {
        eprintln!("xtask ci: copy FAILED");
        return Ok(false);
    }
    // Every topic as a standalone project, built offline (one shared target directory).
    eprintln!("xtask ci: eject --check (every topic ejected and built offline)");
    if !crate::eject::check_all()? {
        eprintln!("xtask ci: eject FAILED");
        return Ok(false);
    }
    // Small counts: two kills and two signals per topic at random moments, eight copies at
    // once, and the proof that clean removes only the dead's leftovers (a few minutes).
    eprintln!("xtask ci: torture (2 kills, 2 signals, 8 copies per topic)");
    if !crate::torture::run(&[])? {
        eprintln!("xtask ci: torture FAILED");
        return Ok(false);
    }
    // Last, so the browser's helper processes can never be taken for a topic's leftovers.
    eprintln!("xtask ci: report (a quick bench, the HTML test and the browser test)");
    if !crate::report::ci_stage()? {
        eprintln!("xtask ci: report FAILED");
        return Ok(false);
    }
    eprintln!("xtask ci: every stage passed");
    Ok(true)
}
