//! `clean` proved: a dead creator's object removed, a live creator's kept.

use super::*;

/// `clean` removes a dead creator's object and leaves a live one's: one of each, made here.
pub(super) fn prove_clean(t: &mut Tally) -> Result<bool> {
    // A dead creator: a copy of xtask that creates an object and exits without unlinking it.
    let exe = std::env::current_exe().context("current_exe")?;
    let out = Command::new(exe)
        .arg("torture-leave-one")
        .stderr(Stdio::inherit())
        .output()
        .context("run xtask torture-leave-one")?;
    let dead_name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || dead_name.is_empty() {
        bail!("torture-leave-one did not leave an object");
    }
    // A live creator: this process.
    let mut live = labkit::names::reserve(labkit::names::Kind::Shm)?;
    create_shm(live.name())?;
    live.mark_created();
    let in_shm = |name: &str| {
        PathBuf::from("/dev/shm")
            .join(name.trim_start_matches('/'))
            .exists()
    };
    let dead_was_there = in_shm(&dead_name);
    crate::clean::clean_dead().context("clean")?;
    let ok = dead_was_there && !in_shm(&dead_name) && in_shm(live.name());
    if !ok {
        t.failures.push(format!(
            "clean: dead creator's {dead_name} {} (was there: {dead_was_there}); live {} {}",
            if in_shm(&dead_name) {
                "NOT removed"
            } else {
                "removed"
            },
            live.name(),
            if in_shm(live.name()) {
                "kept"
            } else {
                "REMOVED"
            }
        ));
    }
    live.unlink()?;
    Ok(ok)
}

/// The hidden `torture-leave-one` command: creates a ledgered object, prints its name, and
/// exits without unlinking it, as a creator killed at that moment would.
pub fn leave_one() -> Result<bool> {
    let mut r = labkit::names::reserve(labkit::names::Kind::Shm)?;
    create_shm(r.name())?;
    r.mark_created();
    println!("{}", r.name());
    std::mem::forget(r); // No unlink, no ledger update: a crash, as far as clean can tell.
    Ok(true)
}
