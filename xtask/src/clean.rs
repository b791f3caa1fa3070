//! `cargo xtask clean`: remove what dead creators left, as their ledgers list it.
//!
//! A ledger belongs to a creator pid and records its start time; a ledger whose creator is still
//! running (same pid, same start time) is left alone, and so is anything no ledger lists or
//! whose name is not of a shape the lab makes.

use std::fs;
use std::path::PathBuf;

use anyhow::Result;
use labkit::names::Cleaned;

use crate::workspace::say;

pub fn run() -> Result<bool> {
    let cleaned = clean_dead()?;
    if cleaned.is_empty() {
        let dir = labkit::names::ledger_dir();
        say(&format!(
            "clean: nothing to remove (ledgers in {})",
            dir.display()
        ));
        return Ok(true);
    }
    let mut ok = true;
    for c in &cleaned {
        let line = match &c.result {
            Ok(()) => format!(
                "clean: removed {} (creator pid {} is gone)",
                c.what, c.creator
            ),
            Err(e) => {
                ok = false;
                format!(
                    "clean: did not remove {} (creator pid {}): {e}",
                    c.what, c.creator
                )
            }
        };
        say(&line);
    }
    Ok(ok)
}

/// The ledger files present now (one per creator that has objects, dead or alive).
pub fn ledger_files() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(labkit::names::ledger_dir()) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ledger"))
        .collect();
    files.sort();
    files
}

/// Removes every object listed by a creator that is no longer alive, then its ledger.
/// Ledgers of living creators are left alone, as is everything not in a ledger.
pub fn clean_dead() -> Result<Vec<Cleaned>> {
    if !labkit::names::ledger_dir().exists() {
        return Ok(Vec::new());
    }
    labkit::names::private_ledger_dir(false)?;
    let mut done = Vec::new();
    for path in ledger_files() {
        let Some(pid) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let alive = match (
            labkit::procfs::start_time(pid),
            labkit::names::recorded_start(&text),
        ) {
            (Some(now), Some(then)) => now == then,
            (Some(_), None) => true, // Cannot tell: assume it is the creator, and leave it be.
            (None, _) => false,
        };
        if !alive {
            done.extend(labkit::names::clean_ledger(&path, pid, &text));
        }
    }
    Ok(done)
}
