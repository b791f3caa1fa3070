//! The lost wake-up, made deterministic, and its cure.
//!
//! A waiter that checks its condition *without* the lock, and only then locks and waits, can
//! miss a notification sent in between: the notifier sets the flag and notifies while nobody is
//! waiting yet, and the waiter then sleeps on a condition that is already true. Here a handshake
//! forces exactly that order, so the bug shows every time: the waiter's timed wait runs out.
//! Checking and waiting under the lock, in a loop, closes the gap: the notifier cannot set the
//! flag between the check and the wait, because it needs the lock the waiter holds until
//! `wait` releases it atomically.

use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::thread::Builder;
use std::time::Duration;

use anyhow::{Context, Result};

/// The buggy waiter: checks unlocked, then waits once. Returns whether its wait timed out (the
/// wake-up was lost); an error if the notifier thread could not be created.
pub fn unlocked_check_loses_the_wakeup(patience: Duration) -> Result<bool> {
    let (flag, cv) = (Mutex::new(false), Condvar::new());
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let (flag, cv) = (&flag, &cv);
    std::thread::scope(|s| {
        notifier()
            .spawn_scoped(s, move || {
                let _ = ready_rx.recv(); // The waiter has checked the flag: false.
                *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
                cv.notify_one(); // Nobody is waiting: this wake-up goes nowhere.
                let _ = go_tx.send(());
            })
            .context("spawn the notifier thread")?;
        let seen = *flag.lock().unwrap_or_else(|p| p.into_inner()); // The check, lock dropped at once.
        if seen {
            return Ok(false);
        }
        let _ = ready_tx.send(());
        let _ = go_rx.recv(); // Forced: the notification happens here, before we wait.
        let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (_guard, result) = cv
            .wait_timeout(guard, patience)
            .unwrap_or_else(|p| p.into_inner());
        Ok(result.timed_out())
    })
}

/// The correct waiter: checks and waits under the lock, in a loop, `rounds` times. Returns how
/// many rounds lost their wake-up (0); an error if a notifier thread could not be created.
pub fn locked_check_never_loses_it(rounds: u64, patience: Duration) -> Result<u64> {
    let mut lost = 0;
    for _ in 0..rounds {
        let (flag, cv) = (Mutex::new(false), Condvar::new());
        let (ready_tx, ready_rx) = mpsc::channel();
        let (flag, cv) = (&flag, &cv);
        std::thread::scope(|s| -> Result<()> {
            notifier()
                .spawn_scoped(s, move || {
                    let _ = ready_rx.recv();
                    *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    cv.notify_one();
                })
                .context("spawn the notifier thread")?;
            let mut guard = flag.lock().unwrap_or_else(|p| p.into_inner());
            let _ = ready_tx.send(()); // Same moment as the buggy version: but we hold the lock.
            while !*guard {
                let (g, result) = cv
                    .wait_timeout(guard, patience)
                    .unwrap_or_else(|p| p.into_inner());
                guard = g;
                if result.timed_out() && !*guard {
                    lost += 1;
                    break;
                }
            }
            Ok(())
        })?;
    }
    Ok(lost)
}

/// The notifying thread's builder, named for `ps` and `perf`.
fn notifier() -> Builder {
    Builder::new().name("cv-notifier".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bug_shows_and_the_cure_works() -> Result<()> {
        assert!(unlocked_check_loses_the_wakeup(Duration::from_millis(100))?);
        assert_eq!(locked_check_never_loses_it(20, Duration::from_secs(10))?, 0);
        Ok(())
    }
}
