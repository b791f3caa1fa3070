//! What every subcommand needs: the workspace's topics, a release build, and running a topic
//! under a hang guard.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::declared::{Declared, OwnClaim};
use crate::leftovers::reap_leftovers;

/// The cargo that runs us (`$CARGO`), or `cargo`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The workspace root: xtask's manifest lives one level below it, unless `LAB_WORKSPACE`
/// names another (the copy stage of `ci` verifies a scratch copy of the workspace).
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("LAB_WORKSPACE") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Makes orphans of our descendants our children, so leftovers are seen (and reaped). Called
/// just before the topics run, after cargo has built them: a daemon cargo starts (a compiler
/// cache server, say) must not be taken for a topic's leftover.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_CHILD_SUBREAPER)");
    }
    Ok(())
}

/// A topic crate of the workspace, and where its release binary lands.
#[derive(Clone, Debug)]
pub struct Topic {
    pub name: String,
    pub binary: PathBuf,
    /// Its `[package.metadata.lab]`: the claims it declares.
    pub declared: Declared,
}

/// Every binary crate under `crates/`, from `cargo metadata`, in name order; `only` filters.
pub fn topics(only: &[String]) -> Result<Vec<Topic>> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root())
        .stderr(Stdio::inherit())
        .output()
        .context("cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed");
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parse cargo metadata")?;
    let target = PathBuf::from(
        meta["target_directory"]
            .as_str()
            .context("no target_directory")?,
    );
    let crates_dir = root().join("crates");
    let mut topics = Vec::new();
    for package in meta["packages"].as_array().context("no packages")? {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        if !manifest.starts_with(&crates_dir) {
            continue;
        }
        let has_bin = package["targets"].as_array().is_some_and(|ts| {
            ts.iter().any(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
        });
        let name = package["name"].as_str().unwrap_or_default().to_owned();
        if has_bin {
            let lab = &package["metadata"]["lab"];
            let strings = |v: &serde_json::Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            };
            let own = lab["own-claims"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| OwnClaim {
                    id: o["id"].as_str().unwrap_or_default().to_owned(),
                    statement: o["statement"].as_str().unwrap_or_default().to_owned(),
                })
                .collect();
            topics.push(Topic {
                binary: target.join("release").join(&name),
                declared: Declared {
                    topic: name.clone(),
                    claims: strings(&lab["claims"]),
                    own,
                },
                name,
            });
        }
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    if !only.is_empty() {
        for wanted in only {
            if !topics.iter().any(|t| &t.name == wanted) {
                bail!(
                    "no topic `{wanted}` in this workspace (have: {})",
                    names(&topics)
                );
            }
        }
        topics.retain(|t| only.contains(&t.name));
    }
    if topics.is_empty() {
        bail!("no topic crates found under {}", crates_dir.display());
    }
    Ok(topics)
}

fn names(topics: &[Topic]) -> String {
    topics
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `cargo build --release` of the topics' binaries.
pub fn build_release(topics: &[Topic]) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--quiet", "--bins"])
        .current_dir(root());
    for t in topics {
        cmd.args(["-p", &t.name]);
    }
    eprintln!("xtask: building {} (release)", names(topics));
    if !cmd.status().context("cargo build")?.success() {
        bail!("cargo build --release failed");
    }
    Ok(())
}

/// Builds the topics' debug binaries (the test-only settings, such as a predictable next
/// name, work in debug builds only) and returns where each is.
pub fn build_debug(topics: &[Topic]) -> Result<Vec<PathBuf>> {
    let mut cmd = cargo();
    cmd.args(["build", "--quiet", "--bins"]).current_dir(root());
    for t in topics {
        cmd.args(["-p", &t.name]);
    }
    eprintln!("xtask: building {} (debug)", names(topics));
    if !cmd.status().context("cargo build")?.success() {
        bail!("cargo build failed");
    }
    Ok(topics
        .iter()
        .map(|t| {
            let release = t.binary.parent().expect("target/release");
            release.with_file_name("debug").join(&t.name)
        })
        .collect())
}

/// How one run of a topic ended.
pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
    /// Processes it left behind (killed and reaped by now).
    pub leftovers: Vec<String>,
}

impl Run {
    /// The last non-empty line of stderr: usually the error message.
    pub fn last_error_line(&self) -> String {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(no message)")
            .trim()
            .to_owned()
    }
}

/// Runs a topic binary with `args`, killing it after `limit` (a hang guard), then finds,
/// kills and reaps any process it left behind. Call [`become_subreaper`] first.
pub fn run_topic(topic: &Topic, args: &[&str], limit: Duration) -> Result<Run> {
    let start = Instant::now();
    let mut child = Command::new(&topic.binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", topic.binary.display()))?;
    // Drain both pipes in threads, so a chatty topic never blocks on a full pipe.
    let out_reader = drain(child.stdout.take().expect("piped"));
    let err_reader = drain(child.stderr.take().expect("piped"));
    let (status, timed_out) =
        match labkit::child::wait_timeout(&mut child, limit).context("waitpid")? {
            Some(status) => (status, false),
            None => {
                let _ = child.kill();
                (child.wait().context("waitpid")?, true)
            }
        };
    let elapsed = start.elapsed();
    // Leftovers first: one of them may hold the pipes open, and the readers would wait for it.
    let leftovers = reap_leftovers(Duration::from_secs(2));
    use std::os::unix::process::ExitStatusExt;
    Ok(Run {
        code: status.code(),
        signal: status.signal(),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed,
        timed_out,
        leftovers,
    })
}

/// Reads a pipe to its end in a thread, so a chatty process never blocks on a full pipe.
pub fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
