//! Names for kernel objects, and the ledger that lets `cargo xtask clean` (xtask/src/clean.rs)
//! remove what a dead creator left behind, and nothing else.
//!
//! * A name is `/pvt-<creator pid>-<random>`: the prefix says whose it is, the pid whose ledger
//!   lists it, the random part keeps eight copies of a demo apart. The object is created with
//!   `O_CREAT | O_EXCL` and mode 0600 by the topic, so a squatter is refused, never reused.
//! * Before the object exists, [`reserve`] writes it to the creator's ledger: one file per
//!   creator pid, `<ledger dir>/<pid>.ledger`, whose first line is the creator's start time (so
//!   a recycled pid is not mistaken for the creator). The [`Reservation`] guard unlinks the
//!   object (if this process created it) and drops the ledger line, on any path out. A ledger
//!   found under our pid with another start time is a dead process's: it is set aside as
//!   `<pid>.<its start>.ledger` for `clean`, since a creator removes only what it created.
//! * A path (a FIFO, a socket) lives in a [`PrivateDir`]: a fresh 0700 directory, ledgered too.
//! * Tests can make the next name predictable with `LABKIT_TEST_NEXT_NAME=<token>`: the next
//!   reservation in that process is then `/pvt-test-<token>`, so a test can squat it first.
//!   Debug builds only: a release binary ignores the variable.
//! * `clean` trusts a ledger only in a directory that is this user's own and private (0700, not
//!   a symbolic link), and removes only names of the lab's own shapes (`/pvt-<pid>-…` of that
//!   ledger's pid, or `pvt-test-…`), so a planted line cannot aim it elsewhere.

use std::ffi::CString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use nix::errno::Errno;

use crate::PREFIX;

/// The kind of a named object, which says how to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// POSIX shared memory (`shm_open`, under `/dev/shm`).
    Shm,
    /// POSIX message queue (`mq_open`).
    Mq,
    /// POSIX named semaphore (`sem_open`, `/dev/shm/sem.*`).
    Sem,
    /// A private temporary directory holding FIFOs or sockets.
    Dir,
}

impl Kind {
    /// Its word in a ledger line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Shm => "shm",
            Kind::Mq => "mq",
            Kind::Sem => "sem",
            Kind::Dir => "dir",
        }
    }
}

/// Environment variable naming the ledger directory (tests point it somewhere private).
pub const LEDGER_DIR_ENV: &str = "LABKIT_LEDGER_DIR";
/// Test-only: the next reservation in the process is `/pvt-test-<value>`.
pub const TEST_NEXT_NAME_ENV: &str = "LABKIT_TEST_NEXT_NAME";

/// Where ledgers live: `$LABKIT_LEDGER_DIR`, else `$XDG_RUNTIME_DIR/pvt-ledger`, else
/// `<temp dir>/pvt-ledger`.
pub fn ledger_dir() -> PathBuf {
    #[cfg(test)]
    if let Some(dir) = tests::PRIVATE_LEDGER.get() {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os(LEDGER_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!("{PREFIX}-ledger"))
}

/// Serialises this process's edits of its own ledger file; holds the lines still to remove.
static LEDGER_LOCK: Mutex<Vec<String>> = Mutex::new(Vec::new());
static TEST_NAME_TAKEN: AtomicBool = AtomicBool::new(false);

/// A name written to the ledger; the object it names is removed when this is dropped.
#[derive(Debug)]
pub struct Reservation {
    kind: Kind,
    name: String,
    created: bool,
    unlinked: bool,
}

/// Reserves a fresh name of `kind` (`/pvt-<pid>-<random>`) and records it in this process's
/// ledger *before* the caller creates the object.
pub fn reserve(kind: Kind) -> Result<Reservation> {
    let name = next_name()?;
    ledger_add(kind, &name)?;
    Ok(Reservation {
        kind,
        name,
        created: false,
        unlinked: false,
    })
}

fn next_name() -> Result<String> {
    if cfg!(debug_assertions) {
        if let Ok(token) = std::env::var(TEST_NEXT_NAME_ENV) {
            if !TEST_NAME_TAKEN.swap(true, Ordering::SeqCst) {
                let name = format!("/{PREFIX}-test-{token}");
                // Said on stderr, so a squatting test knows its squat was met.
                eprintln!("labkit: using the test name {name} ({TEST_NEXT_NAME_ENV})");
                return Ok(name);
            }
        }
    }
    Ok(format!(
        "/{PREFIX}-{}-{:016x}",
        std::process::id(),
        random_u64()?
    ))
}

fn random_u64() -> Result<u64> {
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut bytes))
        .context("read /dev/urandom")?;
    Ok(u64::from_ne_bytes(bytes))
}

impl Reservation {
    /// The name, with its leading `/`, as `shm_open`, `mq_open` and `sem_open` take it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Call once the `O_EXCL` creation succeeded: from now on the guard removes the object.
    /// (If creation failed, the name may be someone else's, and is never removed.)
    pub fn mark_created(&mut self) {
        self.created = true;
    }

    /// Removes the name now, as soon as every side has the object open; the object itself
    /// lives on until its last descriptor or mapping is gone.
    pub fn unlink(&mut self) -> Result<()> {
        if self.created && !self.unlinked {
            remove_object(self.kind, &self.name)
                .with_context(|| format!("unlink {} {}", self.kind.as_str(), self.name))?;
        }
        self.unlinked = true;
        ledger_remove(self.kind, &self.name)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.unlinked {
            // Best effort on the way out; `cargo xtask clean` covers a crash between the two.
            let _ = self.unlink();
        }
    }
}

/// A fresh directory, mode 0700, for a FIFO or a socket path; removed with its content on drop.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Creates `<temp dir>/pvt-<pid>-<random>` (mkdir fails if it exists: no squatting).
    pub fn create() -> Result<PrivateDir> {
        let name = next_name()?;
        let path = std::env::temp_dir().join(name.trim_start_matches('/'));
        let path_text = path.to_string_lossy().into_owned();
        ledger_add(Kind::Dir, &path_text)?;
        if let Err(e) = DirBuilder::new().mode(0o700).create(&path) {
            let _ = ledger_remove(Kind::Dir, &path_text);
            return Err(e).with_context(|| format!("mkdir {}", path.display()));
        }
        Ok(PrivateDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        let _ = ledger_remove(Kind::Dir, &self.path.to_string_lossy());
    }
}

/// Removes the object `name` of `kind`; one already gone is not an error.
pub fn remove_object(kind: Kind, name: &str) -> io::Result<()> {
    match kind {
        Kind::Shm => nix::sys::mman::shm_unlink(name).map_err(io::Error::from),
        Kind::Mq => nix::mqueue::mq_unlink(name).map_err(io::Error::from),
        Kind::Sem => {
            let c = CString::new(name).map_err(io::Error::other)?;
            // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
            Errno::result(unsafe { libc::sem_unlink(c.as_ptr()) })
                .map(drop)
                .map_err(io::Error::from)
        }
        Kind::Dir => fs::remove_dir_all(name),
    }
    .or_else(ignore_not_found)
}

fn ledger_path(pid: u32) -> PathBuf {
    ledger_dir().join(format!("{pid}.ledger"))
}

fn ledger_add(kind: Kind, name: &str) -> Result<()> {
    let _lock = LEDGER_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = private_ledger_dir(true)?;
    let me = std::process::id();
    let path = dir.join(format!("{me}.ledger"));
    let my_start = crate::procfs::start_time(me).unwrap_or(0);
    // A ledger under our pid from an earlier process that died: its objects are leftovers,
    // for `cargo xtask clean` to remove. Set it aside under the dead one's start time (the
    // creator removes only what it created itself).
    let found = fs::read_to_string(&path)
        .ok()
        .map(|text| recorded_start(&text));
    if let Some(then) = found.filter(|&start| start != Some(my_start)) {
        let aside = dir.join(format!("{me}.{}.ledger", then.unwrap_or(0)));
        fs::rename(&path, &aside).with_context(|| format!("rename {}", path.display()))?;
    }
    let fresh = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    let start = fresh.then(|| format!("start {my_start}\n"));
    let text = format!("{}{} {name}\n", start.unwrap_or_default(), kind.as_str());
    // One write, so a crash leaves whole lines.
    file.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

/// The ledger directory, created if asked, and only if it is this user's own private directory:
/// a directory another user planted in a shared temp dir could list anything.
pub fn private_ledger_dir(create: bool) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dir = ledger_dir();
    if create {
        match DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(e).with_context(|| format!("mkdir {}", dir.display()));
            }
            _ => {}
        }
    }
    let meta = fs::symlink_metadata(&dir).with_context(|| format!("stat {}", dir.display()))?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != euid || meta.mode() & 0o077 != 0 {
        anyhow::bail!(
            "{} is not a private directory of this user (uid {euid}, mode 0700); refusing to use it as the ledger",
            dir.display()
        );
    }
    Ok(dir)
}

/// The creator's start time a ledger records (its `start` line).
pub fn recorded_start(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("start "))
        .and_then(|s| s.parse().ok())
}

fn ledger_remove(kind: Kind, name: &str) -> Result<()> {
    let mut unremoved = LEDGER_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    unremoved.push(format!("{} {name}", kind.as_str()));
    remove_lines(&mut unremoved)
}

/// Removes from this process's ledger the lines whose removal is still due. Without a
/// descriptor to spare (`RLIMIT_NOFILE` reached) they wait for the next removal, or for
/// [`settle`] at the end of the run.
fn remove_lines(unremoved: &mut Vec<String>) -> Result<()> {
    let path = ledger_path(std::process::id());
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(), // Nothing listed.
        Err(_) => return Ok(()),
    };
    let rest: Vec<&str> = text
        .lines()
        .filter(|l| !unremoved.iter().any(|u| u == l))
        .collect();
    unremoved.clear();
    if rest.iter().all(|l| l.starts_with("start ")) {
        fs::remove_file(&path)
            .or_else(ignore_not_found)
            .with_context(|| format!("rm {}", path.display()))
    } else {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, rest.join("\n") + "\n")
            .with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("rename {}", path.display()))
    }
}

/// At the end of a run: the ledger lines whose removal had to wait (see [`remove_lines`]).
pub fn settle() {
    let _ = remove_lines(&mut LEDGER_LOCK.lock().unwrap_or_else(|p| p.into_inner()));
}

fn ignore_not_found(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// Where this test binary keeps its ledgers, so tests never touch the user's own.
    pub(crate) static PRIVATE_LEDGER: OnceLock<PathBuf> = OnceLock::new();

    /// Tests in this module share the process's ledger file; each holds this guard, which also
    /// points the ledger at a private directory and removes it, once empty, at the end.
    struct Serial(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

    impl Drop for Serial {
        fn drop(&mut self) {
            let _ = fs::remove_dir(ledger_dir());
        }
    }

    fn serial() -> Serial {
        static SERIAL: Mutex<()> = Mutex::new(());
        PRIVATE_LEDGER.get_or_init(|| {
            std::env::temp_dir().join(format!("labkit-unittest-ledger-{}", std::process::id()))
        });
        Serial(SERIAL.lock().unwrap_or_else(|p| p.into_inner()))
    }

    #[test]
    fn a_stale_ledger_under_our_pid_is_set_aside_for_clean() {
        let _s = serial();
        let me = std::process::id();
        private_ledger_dir(true).unwrap();
        // A process that had our pid before us (another start time) left this.
        fs::write(ledger_path(me), "start 1\nshm /pvt-stale\n").unwrap();
        let fresh = reserve(Kind::Mq).unwrap();
        let aside = ledger_dir().join(format!("{me}.1.ledger"));
        assert_eq!(
            fs::read_to_string(&aside).unwrap(),
            "start 1\nshm /pvt-stale\n"
        );
        let text = ledger_text();
        assert!(
            !text.contains("stale") && !text.starts_with("start 1\n"),
            "{text}"
        );
        drop(fresh);
        fs::remove_file(aside).unwrap();
    }

    fn ledger_text() -> String {
        fs::read_to_string(ledger_path(std::process::id())).unwrap_or_default()
    }

    #[test]
    fn names_are_prefixed_and_distinct() {
        let _s = serial();
        let a = reserve(Kind::Shm).unwrap();
        let b = reserve(Kind::Shm).unwrap();
        let pid_prefix = format!("/pvt-{}-", std::process::id());
        assert!(a.name().starts_with(&pid_prefix), "{}", a.name());
        assert_ne!(a.name(), b.name());
        assert!(ledger_text().contains(a.name()));
        let a_name = a.name().to_owned();
        drop(a);
        assert!(!ledger_text().contains(a_name.as_str()) && ledger_text().contains(b.name()));
        drop(b);
        assert!(!ledger_text().contains(&pid_prefix));
    }

    #[test]
    fn a_created_object_is_unlinked_and_a_squatted_one_is_not() {
        let _s = serial();
        use nix::fcntl::OFlag;
        use nix::sys::stat::Mode;
        let mut mine = reserve(Kind::Shm).unwrap();
        let fd = nix::sys::mman::shm_open(
            mine.name(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .unwrap();
        mine.mark_created();
        let shm_path = format!("/dev/shm{}", mine.name());
        assert!(Path::new(&shm_path).exists());
        drop(mine);
        assert!(!Path::new(&shm_path).exists());
        drop(fd);

        // A name someone else created first: our O_EXCL fails and the guard leaves it alone.
        let squatter = reserve(Kind::Shm).unwrap();
        let name = squatter.name().to_owned();
        let theirs = nix::sys::mman::shm_open(
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .unwrap();
        let err = nix::sys::mman::shm_open(
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .unwrap_err();
        assert_eq!(err, nix::errno::Errno::EEXIST);
        drop(squatter); // never marked created
        assert!(Path::new(&format!("/dev/shm{name}")).exists());
        nix::sys::mman::shm_unlink(name.as_str()).unwrap();
        drop(theirs);
    }

    #[test]
    fn private_dirs_are_0700_and_removed() {
        let _s = serial();
        use std::os::unix::fs::PermissionsExt;
        let dir = PrivateDir::create().unwrap();
        let path = dir.path().to_owned();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::write(path.join("f"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }
}
