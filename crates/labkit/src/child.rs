//! Children: the other side of an exchange, as a re-executed copy of the topic's own binary.
//!
//! A topic's other side is usually the topic's own binary, re-executed with `--role <role>`
//! and `--fd N` for each descriptor it inherits; the topic builds that command and
//! [`Peer::start`] runs it, with stdin and stdout closed (under `--json`, stdout belongs to the
//! Report) and stderr shared. In the child, before `exec`:
//! * `PR_SET_PDEATHSIG(SIGKILL)`, so the child dies with its parent. The signal fires when the
//!   *thread* that forked exits, so spawn from a thread that outlives the child (the main one);
//! * then `getppid()` is compared with the parent's pid: if the parent is already gone, the
//!   death signal will never come, so the child leaves at once.
//!
//! Dropping a [`Peer`] kills it (SIGKILL) and reaps it, so no path out of a run leaves a
//! process behind. A side learns that its peer died from EOF: on the data pipe itself, or on a
//! [`liveness`] pipe whose write end only the peer holds.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cli::RoleArgs;

/// A child process running this binary in another role; killed and reaped when dropped.
#[derive(Debug)]
pub struct Peer {
    role: String,
    child: Child,
    status: Option<ExitStatus>,
    /// A pidfd: readable once the child has exited (`None` where the kernel lacks pidfd_open).
    pidfd: Option<OwnedFd>,
}

impl Peer {
    /// Starts `command`, a child that keeps `inherit` open across exec (at the same numbers)
    /// and has stdin and stdout closed (under `--json`, stdout belongs to the Report); stderr
    /// is shared. Before exec the child is set to die with us and to ignore Ctrl-C (see the
    /// module's notes). The topic builds `command` itself: this binary again
    /// (`std::env::current_exe()`), `--role <role>`, and `--fd N` for each descriptor it
    /// passes, which the child takes back with [`RoleArgs::take_fds`].
    pub fn start(mut command: Command, inherit: &[BorrowedFd<'_>]) -> Result<Peer> {
        let role = command
            .get_args()
            .skip_while(|a| *a != "--role")
            .nth(1)
            .unwrap_or(command.get_program())
            .to_string_lossy()
            .into_owned();
        let pass: Vec<RawFd> = inherit.iter().map(AsRawFd::as_raw_fd).collect();
        let parent = std::process::id() as libc::pid_t;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
        // calls are allowed: prctl, getppid, signal, fcntl and _exit are plain system calls,
        // and the closure allocates nothing (`pass` was built before the fork).
        unsafe {
            command.pre_exec(move || {
                die_with_parent(parent)?;
                // A Ctrl-C goes to the whole process group; the parent alone decides what it
                // ends, and the child ends when the parent closes its pipes. SIG_IGN, unlike
                // a handler, survives exec, so the child is covered from its first instruction.
                Errno::result(libc::signal(libc::SIGINT, libc::SIG_IGN))?;
                // Descriptors are close-on-exec by default in Rust; keep the ones passed on.
                // This changes only the child's descriptor table.
                for &fd in &pass {
                    Errno::result(libc::fcntl(fd, libc::F_SETFD, 0))?;
                }
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| {
            format!(
                "spawn {} --role {role}",
                command.get_program().to_string_lossy()
            )
        })?;
        let pidfd = pidfd_open(child.id()).ok();
        Ok(Peer {
            role,
            child,
            status: None,
            pidfd,
        })
    }

    /// A descriptor that becomes readable when the child exits, however it exits: poll it
    /// beside the descriptors you wait on, and a death wakes you at once.
    pub fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(AsFd::as_fd)
    }

    /// The child's pid.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Waits for the child to end and returns how it ended.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self
            .child
            .wait()
            .with_context(|| format!("waitpid({})", self.child.id()))?;
        self.status = Some(status);
        Ok(status)
    }

    /// Waits at most `limit` for the child to end (a hang guard, not a way to detect death).
    pub fn wait_for(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = wait_timeout(&mut self.child, limit)
                .with_context(|| format!("waitpid({})", self.child.id()))?;
        }
        Ok(self.status)
    }

    /// Whether the child has been reaped already (its status is known).
    pub fn ended(&self) -> bool {
        self.status.is_some()
    }

    /// Whether the child has ended badly (a signal or a non-zero exit); never blocks.
    pub fn died(&mut self) -> bool {
        self.wait_for(Duration::ZERO)
            .ok()
            .flatten()
            .is_some_and(|s| !s.success())
    }

    /// Waits for a child that finished its part; an error says how it ended otherwise.
    pub fn finish(mut self) -> Result<()> {
        let status = self.wait()?;
        ensure!(status.success(), "{} {}", self.who(), describe(status));
        Ok(())
    }

    /// The error to report when the exchange broke (EOF, EPIPE): waits briefly for the peer to
    /// be reapable and says how it died, e.g. "the echo peer (pid 123) died: killed by SIGKILL".
    pub fn death(&mut self, broke: impl std::fmt::Display) -> anyhow::Error {
        match self.wait_for(Duration::from_secs(10)) {
            Ok(Some(status)) => anyhow!("{} died: {} ({broke})", self.who(), describe(status)),
            _ => anyhow!("{} stopped answering: {broke}", self.who()),
        }
    }

    /// "the echo peer (pid 123)", as errors name it.
    fn who(&self) -> String {
        format!("the {} peer (pid {})", self.role, self.child.id())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.status.is_none() {
            // On every path out (errors, interruption) the child goes too; ESRCH means it
            // already exited and only needs reaping.
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.wait();
        }
    }
}

/// Whether the process behind `pidfd` has ended badly (`Some(true)`: a signal or a non-zero
/// exit), ended well (`Some(false)`), or still runs (`None`). It does not reap the process
/// (`WNOWAIT`), so its `Peer` can still wait for it; and it needs only `&`, so a watchdog
/// thread can ask.
pub fn ended_badly(pidfd: BorrowedFd<'_>) -> io::Result<Option<bool>> {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    let id = pidfd.as_raw_fd() as libc::id_t;
    // SAFETY: `info` is valid for writes; P_PIDFD takes the descriptor as the id.
    Errno::result(unsafe { libc::waitid(libc::P_PIDFD, id, &mut info, flags) })?;
    // SAFETY: waitid filled `info` for a child (si_pid 0 means none has changed state yet).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    Ok((pid != 0).then_some(info.si_code != libc::CLD_EXITED || status != 0))
}

/// The heart of a watchdog thread, for waiters that block without a timeout (a plain
/// `sem_wait` or `mq_receive`, as fast as C's): waits until one of the peers behind `exits`
/// (pidfds) ends badly or a shutdown signal arrives, and returns `true`, so the caller can wake
/// its waiters (post the semaphore, send a marker message). A peer that exits 0 has done its
/// part and is no longer watched. Returns `false` once `stop` is readable or closed: the
/// waiters are done.
pub fn watch_peers(
    stop: BorrowedFd<'_>,
    shutdown: &crate::signals::Shutdown,
    mut exits: Vec<OwnedFd>,
) -> bool {
    loop {
        let mut fds = vec![
            PollFd::new(stop, PollFlags::POLLIN),
            PollFd::new(shutdown.wake_fd(), PollFlags::POLLIN),
        ];
        fds.extend(
            exits
                .iter()
                .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
        );
        if poll(&mut fds, PollTimeout::NONE) == Err(nix::errno::Errno::EINTR) {
            continue;
        }
        let hit = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        if hit(&fds[0]) {
            return false;
        }
        let mut trip = hit(&fds[1]);
        let ready: Vec<usize> = (2..fds.len())
            .filter(|&i| hit(&fds[i]))
            .map(|i| i - 2)
            .collect();
        drop(fds);
        for i in ready.into_iter().rev() {
            match ended_badly(exits[i].as_fd()) {
                Ok(Some(false)) => drop(exits.remove(i)),
                Ok(None) => {}
                Ok(Some(true)) | Err(_) => trip = true,
            }
        }
        if trip {
            return true;
        }
    }
}

/// `pidfd_open(pid)`: a descriptor that is readable once `pid` has exited (Linux 5.3+).
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) })?;
    // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits that should end at once; reaching one means something is wrong, not slow.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// `--fd N` for a descriptor passed to a child (see [`Peer::start`]).
pub fn fd_arg(fd: &impl AsRawFd) -> [String; 2] {
    ["--fd".to_owned(), fd.as_raw_fd().to_string()]
}

/// `--fd N` for each descriptor passed to a child, in order: the child takes them back in
/// that order with [`RoleArgs::take_fds`].
pub fn fd_args(fds: &[BorrowedFd<'_>]) -> Vec<String> {
    fds.iter().flat_map(fd_arg).collect()
}

/// `--cpu C` when the child is to pin itself to CPU `C` (see [`RoleArgs::enter_child`]).
pub fn cpu_arg(cpu: Option<usize>) -> Vec<String> {
    cpu.map(|c| vec!["--cpu".to_owned(), c.to_string()])
        .unwrap_or_default()
}

/// This very binary, to be started as a child in `role`: `<current_exe> --role <role>`. The
/// child's `main` sees `--role` and plays that part ([`crate::dispatch`]).
pub fn this_binary(role: &str) -> Result<Command> {
    let mut command = Command::new(std::env::current_exe().context("current_exe")?);
    command.args(["--role", role]);
    Ok(command)
}

/// In a child between fork and exec: be killed (SIGKILL) when the thread that forked us ends,
/// and end at once if `parent` is already gone (then no signal would come). Only plain system
/// calls (prctl, getppid, _exit), nothing allocated: safe after fork.
pub fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    let signal = libc::SIGKILL as libc::c_ulong;
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory.
    Errno::result(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) })?;
    // SAFETY: getppid takes nothing and touches no memory.
    if unsafe { libc::getppid() } != parent {
        // SAFETY: _exit ends this forked child at once; it runs no destructor or atexit hook
        // that could touch the parent's copied state.
        unsafe { libc::_exit(1) };
    }
    Ok(())
}

/// Waits at most `limit` for any `std::process::Child` to end: `None` if it is still running.
/// A hang guard for tests and tools; a peer's death is detected by EOF, not by this.
///
/// It sleeps in `poll` on a pidfd (readable once the child has exited), so waiting for a
/// benchmark costs no wake-ups; where pidfds are missing it checks every 2 ms instead.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    let pidfd = pidfd_open(child.id()).ok();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match &pidfd {
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
                match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            None => std::thread::sleep(Duration::from_millis(2).min(left)),
        }
    }
}

/// The error for an exchange with `peers` that broke with `err`: the shutdown signal if one came
/// (the peers may be going with us), else the first peer that ended badly and how (waiting up to
/// a second in all for a dying one to become reapable), else `err` itself.
pub fn explain_break(peers: &mut [Peer], err: io::Error) -> anyhow::Error {
    if let Some(signal) = crate::signals::requested() {
        return crate::Interrupted(signal).into();
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while !peers.is_empty() {
        if let Some(p) = peers.iter_mut().find_map(|p| p.died().then_some(p)) {
            return p.death(&err);
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    anyhow::Error::new(err)
}

/// "exited with code 3", "was killed by SIGKILL", "exited normally".
pub fn describe(status: ExitStatus) -> String {
    match (status.signal(), status.code()) {
        (Some(sig), _) => match Signal::try_from(sig) {
            Ok(s) => format!("was killed by {}", s.as_str()),
            Err(_) => format!("was killed by signal {sig}"),
        },
        (None, Some(0)) => "exited normally".to_owned(),
        (None, Some(code)) => format!("exited with code {code}"),
        (None, None) => format!("ended ({status})"),
    }
}

impl RoleArgs {
    /// The address a `probe` child looks at (`--probe`: where the parent put its nonce).
    pub fn probe_addr(&self) -> Result<usize> {
        self.probe.context("--probe is required for the probe role")
    }

    /// In a child: takes ownership of the descriptors the parent passed, in order, checking
    /// each is open. Takes them once; a second call gets none.
    pub fn take_fds(&mut self) -> Result<Vec<OwnedFd>> {
        std::mem::take(&mut self.fds)
            .into_iter()
            .map(|fd| {
                // SAFETY: F_GETFD only reads the descriptor's flags; it fails on a closed fd.
                if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                    return Err(io::Error::last_os_error())
                        .with_context(|| format!("inherited fd {fd}"));
                }
                // SAFETY: the fd is open (checked above), was passed to this process for it
                // alone, and `take` leaves no second copy of the number in `self`.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            })
            .collect()
    }

    /// In a child: the setup every role shares: pins to `--cpu` if given. (SIGINT is already
    /// ignored, since before exec: see [`Peer::start`].)
    pub fn enter_child(&self) -> Result<()> {
        if let Some(cpu) = self.cpu {
            crate::pin::pin_current_thread(cpu)
                .with_context(|| format!("sched_setaffinity(CPU {cpu})"))?;
        }
        Ok(())
    }
}

/// A liveness pipe: the side that must be watched holds [`Alive`]; the watcher's [`Watch`]
/// becomes readable (EOF) the moment every copy of `Alive` is closed, i.e. when that side dies,
/// however it dies.
pub fn liveness() -> io::Result<(Alive, Watch)> {
    let (reader, writer) = std::io::pipe()?;
    Ok((Alive(OwnedFd::from(writer)), Watch(OwnedFd::from(reader))))
}

/// The write end of a liveness pipe; nothing is ever written to it.
#[derive(Debug)]
pub struct Alive(pub OwnedFd);

/// The read end of a liveness pipe.
#[derive(Debug)]
pub struct Watch(pub OwnedFd);

impl Watch {
    /// True once the watched side is gone; waits at most `timeout` for that.
    pub fn is_gone(&self, timeout: Duration) -> io::Result<bool> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        Ok(poll(&mut fds, PollTimeout::from(ms))? > 0)
    }
}

impl AsFd for Watch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsFd for Alive {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_sees_the_other_side_go() {
        let (alive, watch) = liveness().unwrap();
        assert!(!watch.is_gone(Duration::from_millis(10)).unwrap());
        let t = std::thread::spawn(move || drop(alive));
        t.join().unwrap();
        assert!(watch.is_gone(Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn describe_names_the_signal() {
        assert_eq!(describe(ExitStatus::from_raw(9)), "was killed by SIGKILL");
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exited with code 3");
        assert_eq!(describe(ExitStatus::from_raw(0)), "exited normally");
    }
}
