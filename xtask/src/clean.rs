//! `cargo xtask clean`: remove what dead creators left, as their ledgers list it.
//!
//! A ledger belongs to a creator pid and records its start time; a ledger whose creator is still
//! running (same pid, same start time) is left alone, and so is anything no ledger lists.

use anyhow::Result;

pub fn run() -> Result<bool> {
    let cleaned = labkit::names::clean_dead();
    if cleaned.is_empty() {
        println!(
            "clean: nothing to remove (ledgers in {})",
            labkit::names::ledger_dir().display()
        );
        return Ok(true);
    }
    let mut ok = true;
    for c in &cleaned {
        match &c.result {
            Ok(()) => println!(
                "clean: removed {} (creator pid {} is gone)",
                c.what, c.creator
            ),
            Err(e) => {
                ok = false;
                println!(
                    "clean: could not remove {} (creator pid {}): {e}",
                    c.what, c.creator
                );
            }
        }
    }
    Ok(ok)
}
