//! `cargo xtask clean`: remove what dead creators left, as their ledgers list it.
//!
//! A ledger belongs to a creator pid and records its start time; a ledger whose creator is still
//! running (same pid, same start time) is left alone, and so is anything no ledger lists or
//! whose name is not of a shape the lab makes.

use anyhow::Result;

use crate::workspace::say;

pub fn run() -> Result<bool> {
    let cleaned = labkit::names::clean_dead()?;
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
