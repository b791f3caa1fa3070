//! The far side of an exchange: a child process (a [`Peer`]) or a thread of ours, and how
//! either's end is told apart when the exchange breaks.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::child::Peer;
use nix::unistd::Pid;

/// The far side of an exchange: a child process or a thread of ours.
pub enum Far<T> {
    Process(Peer),
    /// `None` once joined after a broken exchange.
    Thread(Option<JoinHandle<std::io::Result<T>>>),
}

impl<T> Far<T> {
    /// Pids whose CPU time belongs to this contender.
    pub fn pids(&self) -> Vec<Pid> {
        match self {
            Far::Process(peer) => vec![peer.pid()],
            Far::Thread(_) => Vec::new(),
        }
    }

    /// Turns a broken exchange into an error that says what happened to the far side.
    pub fn broke(&mut self, err: std::io::Error) -> anyhow::Error {
        if let Some(signal) = labkit::signals::requested() {
            // Not a failure: we are shutting down, and the far side may be going with us.
            return labkit::Interrupted(signal).into();
        }
        match self {
            Far::Process(peer) => peer.death(err),
            Far::Thread(slot) => {
                // If the thread failed first, its error is the story; it ends right after one.
                let started = Instant::now();
                while slot.as_ref().is_some_and(|h| !h.is_finished())
                    && started.elapsed() < Duration::from_secs(1)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                match slot.take_if(|h| h.is_finished()).map(JoinHandle::join) {
                    Some(Ok(Err(theirs))) => anyhow::Error::new(theirs)
                        .context(format!("the far thread failed (our side saw: {err})")),
                    Some(Err(_)) => {
                        anyhow::anyhow!("the far thread panicked (our side saw: {err})")
                    }
                    _ => anyhow::Error::new(err).context("the exchange with the thread broke"),
                }
            }
        }
    }

    /// Waits for a thread's result; a process has already reported its part through the pipe.
    pub fn finish(self) -> Result<Option<T>> {
        match self {
            Far::Process(peer) => peer.finish().map(|()| None),
            Far::Thread(None) => Ok(None),
            Far::Thread(Some(handle)) => match handle.join() {
                Ok(result) => Ok(Some(result.context("the far thread failed")?)),
                Err(_) => bail!("the far thread panicked"),
            },
        }
    }
}

impl<T: Send + 'static> Far<T> {
    /// Starts the far side as a thread named `name`, pinned to `cpu` (if any), running `work`.
    pub fn thread(
        name: &str,
        cpu: Option<usize>,
        work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<Far<T>> {
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                if let Some(cpu) = cpu {
                    labkit::pin::pin_current_thread(cpu)?;
                }
                work()
            })
            .with_context(|| format!("spawn the {name} thread"))?;
        Ok(Far::Thread(Some(handle)))
    }
}
