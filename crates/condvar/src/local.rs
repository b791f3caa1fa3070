//! The same ping-pong for threads: a `std::sync::Mutex<u64>` and a `std::sync::Condvar`, every
//! wait in a predicate loop, spurious wake-ups counted.

use std::sync::{Condvar, Mutex};

use crate::pshared::{RECHECK, STOP, Waits};

pub struct ThreadTurn {
    value: Mutex<u64>,
    changed: Condvar,
}

impl ThreadTurn {
    pub fn new() -> ThreadTurn {
        ThreadTurn {
            value: Mutex::new(0),
            changed: Condvar::new(),
        }
    }

    /// Sets the value and wakes the other side.
    pub fn set(&self, value: u64) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = value;
        self.changed.notify_one();
    }

    /// Waits until the value is `want` (or [`STOP`]); returns what it found.
    pub fn wait_for(&self, want: u64, waits: &mut Waits) -> u64 {
        let mut value = self.value.lock().unwrap_or_else(|p| p.into_inner());
        while *value != want && *value != STOP {
            let (v, result) = self
                .changed
                .wait_timeout(value, RECHECK)
                .unwrap_or_else(|p| p.into_inner());
            value = v;
            if result.timed_out() {
                waits.timeouts += 1;
            } else if *value != want && *value != STOP {
                waits.spurious += 1;
            }
        }
        *value
    }
}

impl Default for ThreadTurn {
    fn default() -> Self {
        Self::new()
    }
}
