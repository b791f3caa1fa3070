//! The mechanism of the `shm` topic, as a library so that its protocol can be model-checked
//! (`loom`) on its own: a single-producer single-consumer ring ([`ring`]) whose waits spin
//! briefly and then sleep on a futex in the shared page ([`wait`]).

pub mod ring;
#[cfg(not(loom))]
pub mod wait;
