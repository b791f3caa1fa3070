//! `cargo xtask clean`: remove what dead creators left, as their ledgers list it.
//!
//! A ledger belongs to a creator pid and records its start time; a ledger whose creator is still
//! running (same pid, same start time) is left alone, and so is anything no ledger lists or
//! whose name is not of a shape the lab makes.

use std::fs;
use std::path::Path;

use anyhow::Result;
use labkit::names::Kind;

use crate::leftovers::ledger_files;
use crate::text::say;

pub fn run() -> Result<bool> {
    let cleaned = clean_dead()?;
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

/// Removes every object listed by a creator that is no longer alive, then its ledger.
/// Ledgers of living creators are left alone, as is everything not in a ledger.
pub fn clean_dead() -> Result<Vec<Cleaned>> {
    if !labkit::names::ledger_dir().exists() {
        return Ok(Vec::new());
    }
    labkit::names::private_ledger_dir(false)?;
    let mut done = Vec::new();
    for path in ledger_files() {
        let Some(pid) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.split('.').next()?.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let alive = match (
            labkit::procfs::start_time(pid),
            labkit::names::recorded_start(&text),
        ) {
            (Some(now), Some(then)) => now == then,
            (Some(_), None) => true, // Cannot tell: assume it is the creator, and leave it be.
            (None, _) => false,
        };
        if !alive {
            done.extend(clean_ledger(&path, pid, &text));
        }
    }
    Ok(done)
}

/// What [`clean_ledger`] did with one ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    pub creator: u32,
    pub what: String,
    pub result: Result<(), String>,
}

/// Removes what one dead creator's ledger lists (names of the lab's shapes only), then the file.
pub fn clean_ledger(path: &Path, pid: u32, text: &str) -> Vec<Cleaned> {
    let mut done = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with("start ")) {
        let Some((kind, name)) = line
            .split_once(' ')
            .and_then(|(k, n)| Some((kind_of(k)?, n)))
        else {
            continue;
        };
        let what = format!("{} {name}", kind.as_str());
        let result = if is_ours(kind, name, pid) {
            labkit::names::remove_object(kind, name).map_err(|e| e.to_string())
        } else {
            Err("not a name this lab makes; left alone".to_owned())
        };
        done.push(Cleaned {
            creator: pid,
            what,
            result,
        });
    }
    let _ = fs::remove_file(path);
    done
}

/// Whether `name` has a shape the lab gives to objects of creator `pid`: `/pvt-<pid>-<random>`
/// (or `/pvt-test-<token>`), and for a directory, that name directly inside the temp dir.
fn is_ours(kind: Kind, name: &str, pid: u32) -> bool {
    let bare = match kind {
        Kind::Dir => {
            let path = Path::new(name);
            if path.parent() != Some(std::env::temp_dir().as_path()) {
                return false;
            }
            match path.file_name().and_then(|n| n.to_str()) {
                Some(n) => n,
                None => return false,
            }
        }
        _ => match name.strip_prefix('/') {
            Some(n) => n,
            None => return false,
        },
    };
    let mine = format!("{}-{pid}-", labkit::PREFIX);
    let test = format!("{}-test-", labkit::PREFIX);
    let rest = bare
        .strip_prefix(&mine)
        .or_else(|| bare.strip_prefix(&test));
    rest.is_some_and(|r| !r.is_empty() && !r.contains('/') && r != "." && r != "..")
}

/// The kind a ledger line's first word names.
fn kind_of(word: &str) -> Option<Kind> {
    [Kind::Shm, Kind::Mq, Kind::Sem, Kind::Dir]
        .into_iter()
        .find(|k| k.as_str() == word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_labs_own_shapes_are_ours() {
        let tmp = std::env::temp_dir();
        assert!(is_ours(Kind::Shm, "/pvt-12-abc", 12));
        assert!(is_ours(Kind::Sem, "/pvt-test-x", 99));
        assert!(!is_ours(Kind::Shm, "/pvt-13-abc", 12));
        assert!(!is_ours(Kind::Shm, "/pvt-12-", 12));
        assert!(!is_ours(Kind::Mq, "pvt-12-abc", 12));
        assert!(is_ours(
            Kind::Dir,
            tmp.join("pvt-12-abc").to_str().unwrap(),
            12
        ));
        assert!(!is_ours(
            Kind::Dir,
            tmp.join("x/pvt-12-abc").to_str().unwrap(),
            12
        ));
        assert!(!is_ours(Kind::Dir, "/home/someone", 12));
        assert!(!is_ours(
            Kind::Dir,
            tmp.join("pvt-12-..").to_str().unwrap(),
            12
        ));
    }

    #[test]
    fn cleaning_a_ledger_removes_only_the_labs_own_names() {
        // A ledger of a "dead" creator (pid beyond pid_max) listing a real shm object.
        let dead_pid = 4_000_000u32 + (std::process::id() % 1000);
        let name = format!("/pvt-{dead_pid}-cleantest{}", std::process::id());
        use nix::fcntl::OFlag;
        use nix::sys::stat::Mode;
        let fd = nix::sys::mman::shm_open(
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .unwrap();
        drop(fd);
        // And a planted line naming something that is not the lab's: never removed.
        let planted = std::env::temp_dir().join(format!("not-the-lab-{}", std::process::id()));
        fs::create_dir(&planted).unwrap();
        let text = format!(
            "start 1\nshm {name}\ndir {}\nshm /pvt-{}-belongs-to-someone-else\n",
            planted.display(),
            dead_pid + 1
        );
        let ledger = std::env::temp_dir().join(format!("clean-test-{}.ledger", std::process::id()));
        fs::write(&ledger, &text).unwrap();

        let cleaned = clean_ledger(&ledger, dead_pid, &text);
        assert!(planted.is_dir(), "a planted path was removed");
        fs::remove_dir(&planted).unwrap();
        assert_eq!(
            cleaned.iter().filter(|c| c.result.is_err()).count(),
            2,
            "{cleaned:?}"
        );
        assert!(
            cleaned.iter().any(|c| c.creator == dead_pid
                && c.what == format!("shm {name}")
                && c.result.is_ok()),
            "{cleaned:?}"
        );
        assert!(!Path::new(&format!("/dev/shm{name}")).exists());
        assert!(!ledger.exists());
    }
}
