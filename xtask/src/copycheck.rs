//! `cargo xtask ci`'s copy stage: the README's "Copying a crate", done as a new user would. In
//! a scratch copy of the workspace (the files git tracks), `crates/pipes` is copied to
//! `crates/copied`, the package renamed, a row added to the README's topic table, and nothing
//! else; then the copy must pass `cargo fmt --check`, clippy, its own tests and the
//! cross-topic checks, and `cargo xtask verify copied`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace::{cargo, root};

/// The topic copied, and the name of the copy.
const FROM: &str = "pipes";
const TO: &str = "copied";

pub fn run() -> Result<bool> {
    let scratch = root().join("target").join("copy-check");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("remove {}", scratch.display()))?;
    }
    copy_workspace(&scratch)?;
    follow_the_readme(&scratch)?;
    // The scratch workspace builds into the lab's own target directory: the registry crates
    // are built once, and the copy's crates (at another path) get artifacts of their own.
    let target = root().join("target");
    let steps: [(&str, Vec<&str>); 4] = [
        ("fmt", vec!["fmt", "--all", "--check"]),
        (
            "clippy",
            vec!["clippy", "-p", TO, "--all-targets", "--", "-D", "warnings"],
        ),
        ("test", vec!["test", "-p", TO]),
        // The cross-topic check that every topic is documented (xtask/src/documented.rs).
        ("documented", vec!["test", "-p", "xtask", "documented"]),
    ];
    for (name, args) in steps {
        eprintln!("xtask copy-check: {name}: cargo {}", args.join(" "));
        let ok = cargo()
            .args(&args)
            .current_dir(&scratch)
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .with_context(|| format!("cargo {name} (the copy)"))?
            .success();
        if !ok {
            eprintln!("xtask copy-check: {name} FAILED in {}", scratch.display());
            return Ok(false);
        }
    }
    // This very xtask, pointed at the scratch workspace: verify finds the copy there.
    eprintln!("xtask copy-check: verify {TO}");
    let ok = Command::new(std::env::current_exe().context("the xtask binary")?)
        .args(["verify", TO])
        .env("LAB_WORKSPACE", &scratch)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .context("xtask verify (the copy)")?
        .success();
    if ok {
        std::fs::remove_dir_all(&scratch).ok();
    }
    Ok(ok)
}

/// Every file git tracks, copied into `scratch` (an untracked file is not the user's copy).
fn copy_workspace(scratch: &Path) -> Result<()> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .context("git ls-files")?;
    if !out.status.success() {
        bail!("git ls-files failed: the copy stage needs a git checkout");
    }
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let rel = PathBuf::from(String::from_utf8_lossy(name).into_owned());
        let (from, to) = (root().join(&rel), scratch.join(&rel));
        if !from.is_file() {
            continue; // Deleted in the work tree but not yet in git.
        }
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        }
        std::fs::copy(&from, &to).with_context(|| format!("copy {}", rel.display()))?;
    }
    Ok(())
}

/// The README's three steps, and nothing else.
fn follow_the_readme(scratch: &Path) -> Result<()> {
    let crates = scratch.join("crates");
    // 1. Copy the folder.
    let status = Command::new("cp")
        .args(["-r"])
        .arg(crates.join(FROM))
        .arg(crates.join(TO))
        .status()
        .context("cp -r")?;
    if !status.success() {
        bail!("cp -r crates/{FROM} crates/{TO} failed");
    }
    // 2. Rename the package.
    let manifest = crates.join(TO).join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).context("read the copy's Cargo.toml")?;
    let from_line = format!("name = \"{FROM}\"");
    if !text.contains(&from_line) {
        bail!("{} has no line `{from_line}`", manifest.display());
    }
    std::fs::write(
        &manifest,
        text.replacen(&from_line, &format!("name = \"{TO}\""), 1),
    )
    .context("write the copy's Cargo.toml")?;
    // 3. Add a row to the topic table, after the original's.
    let readme = scratch.join("README.md");
    let text = std::fs::read_to_string(&readme).context("read README.md")?;
    let row_start = format!("| [`{FROM}`](crates/{FROM}/README.md) |");
    let Some(row) = text.lines().find(|l| l.starts_with(&row_start)) else {
        bail!("README.md has no topic-table row for {FROM}");
    };
    let new_row = format!("| [`{TO}`](crates/{TO}/README.md) | a copy of {FROM} | | |");
    std::fs::write(&readme, text.replacen(row, &format!("{row}\n{new_row}"), 1))
        .context("write README.md")?;
    Ok(())
}
