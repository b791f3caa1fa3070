//! The ways to start a unit of concurrent work and wait for it to end.
//!
//! Each function creates one unit that does nothing and waits for it, so what is timed is the
//! creation and the teardown alone:
//!
//! | function | what the kernel does |
//! |---|---|
//! | [`fork_exit_wait`] | copies this process (page tables, descriptors; pages shared copy-on-write) |
//! | [`fork_exec_wait`] | the same, then replaces the copy with a new program |
//! | [`posix_spawn_wait`] | starts a new program without copying this one (a `vfork`-style clone) |
//! | [`command_wait`] | `std::process::Command`, which uses `posix_spawn` where it can |
//! | [`thread_spawn_join`] | a new thread in this process: a stack and a task, nothing copied |
//! | [`pthread_create_join`] | the same through libc alone, without what std adds (a name, an alternate signal stack for overflow reports) |
//! | [`scoped_thread`] | the same, through `std::thread::scope` |

use std::ffi::CString;
use std::io;

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// A program to start, with its argument vector prepared before any fork (the child may not
/// allocate).
pub struct Program {
    path: CString,
    argv: Vec<CString>,
}

impl Program {
    /// `path` run with no arguments besides its name.
    pub fn new(path: &str) -> io::Result<Program> {
        let path = CString::new(path).map_err(io::Error::other)?;
        Ok(Program {
            argv: vec![path.clone()],
            path,
        })
    }

    fn argv_ptrs(&self) -> Vec<*const libc::c_char> {
        self.argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    }
}

fn expect_success(status: WaitStatus) -> io::Result<()> {
    match status {
        WaitStatus::Exited(_, 0) => Ok(()),
        other => Err(io::Error::other(format!(
            "the child ended badly: {other:?}"
        ))),
    }
}

/// `fork`; the child `_exit`s at once; the parent waits for it.
///
/// # Safety
/// The process must have a single thread: the child of a multi-threaded fork holds only the
/// forking thread, and any lock another thread held stays locked in it.
pub unsafe fn fork_exit_wait() -> io::Result<()> {
    // SAFETY: single-threaded by this function's contract; the child only calls `_exit`.
    match unsafe { fork() }? {
        // SAFETY: `_exit` is async-signal-safe and leaves without running any of our code.
        ForkResult::Child => unsafe { libc::_exit(0) },
        ForkResult::Parent { child } => expect_success(waitpid(child, None)?),
    }
}

/// `fork`, then `execv` of `program` in the child; the parent waits for it.
///
/// # Safety
/// As for [`fork_exit_wait`]: the process must have a single thread.
pub unsafe fn fork_exec_wait(program: &Program) -> io::Result<()> {
    let argv = program.argv_ptrs();
    // SAFETY: single-threaded by this function's contract; the child calls only `execv` and
    // `_exit`, both async-signal-safe, with pointers prepared before the fork.
    match unsafe { fork() }? {
        // SAFETY: `execv` and `_exit` are async-signal-safe; `argv` and the path were built
        // before the fork and stay valid in the child's copy of memory.
        ForkResult::Child => unsafe {
            libc::execv(program.path.as_ptr(), argv.as_ptr());
            libc::_exit(127)
        },
        ForkResult::Parent { child } => expect_success(waitpid(child, None)?),
    }
}

/// `posix_spawn` of `program` with an empty environment; waits for it.
pub fn posix_spawn_wait(program: &Program) -> io::Result<()> {
    let argv = program.argv_ptrs();
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is valid and NUL-terminated where it must be, and outlives the call;
    // null file actions and attributes mean "inherit, change nothing".
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            program.path.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            argv.as_ptr().cast(),
            envp.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    expect_success(waitpid(Pid::from_raw(pid), None)?)
}

/// `std::process::Command::new(program).status()`.
pub fn command_wait(path: &str) -> io::Result<()> {
    let status = std::process::Command::new(path).env_clear().status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{path} ended with {status}")))
    }
}

/// `std::thread::spawn` of an empty closure, then `join`.
pub fn thread_spawn_join() -> io::Result<()> {
    std::thread::Builder::new()
        .spawn(|| {})?
        .join()
        .map_err(|_| io::Error::other("the thread panicked"))
}

extern "C" fn nothing(arg: *mut libc::c_void) -> *mut libc::c_void {
    arg
}

/// `pthread_create` of an empty function, then `pthread_join`: a thread as C creates it.
pub fn pthread_create_join() -> io::Result<()> {
    let mut thread: libc::pthread_t = 0;
    // SAFETY: `thread` is a valid out-parameter, null attributes mean the defaults, and
    // `nothing` is a valid start routine that touches no memory.
    let rc = unsafe {
        libc::pthread_create(&mut thread, std::ptr::null(), nothing, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: `thread` was just created, is joinable, and is joined exactly once.
    let rc = unsafe { libc::pthread_join(thread, std::ptr::null_mut()) };
    if rc != 0 {
        Err(io::Error::from_raw_os_error(rc))
    } else {
        Ok(())
    }
}

/// One scoped thread (`std::thread::scope`), joined at the end of the scope.
pub fn scoped_thread() -> io::Result<()> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .spawn_scoped(s, || {})
            .map(|h| h.join().map_err(|_| io::Error::other("panicked")))
    })?
}

/// The runtime async tasks are created on: tokio's current-thread runtime, which starts no
/// thread of its own (forks elsewhere in this process stay safe) and runs every task on the
/// thread that drives it (`block_on`).
pub fn task_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().build()
}

/// `n` async tasks on `runtime`, each created (`tokio::spawn` of a task that does nothing) and
/// awaited to its end, timed one by one into `record`; stops early if `stop()` says so.
pub fn task_spawn_join(
    runtime: &tokio::runtime::Runtime,
    n: u64,
    record: &mut dyn FnMut(std::time::Duration),
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    runtime.block_on(async {
        for _ in 0..n {
            if stop() {
                break;
            }
            let start = std::time::Instant::now();
            tokio::spawn(async {}).await.map_err(io::Error::other)?;
            record(start.elapsed());
        }
        Ok(())
    })
}

/// A task on an existing rayon pool, waited for.
pub fn pool_task(pool: &rayon::ThreadPool) {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    pool.spawn(move || {
        let _ = tx.send(());
    });
    let _ = rx.recv();
}
