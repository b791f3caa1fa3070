//! `cargo xtask eject <topic> <dir>`: one topic as a standalone Cargo project, a starting point
//! for a program of your own.
//!
//! The topic's crate is copied as is (`src/`, with its lesson modules, and `tests/`); its
//! manifest gets every version written out (no workspace inheritance); the lab's two libraries
//! come along whole, `labkit/` (run time) and `testkit/` (its tests only), as path
//! dependencies; the workspace's `Cargo.lock` pins the same versions, so the project builds
//! offline where the lab built. Nothing is scanned or cut: whole crates are copied.
//! `eject --check` ejects every topic under `target/eject/` and builds them all offline with
//! one shared target directory (one dependency build, not eleven), then runs each `--quick`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::text::say;
use crate::workspace::{self, Topic};

/// An ejected binary's `--quick` run that takes longer than this is hung.
const RUN_GUARD: std::time::Duration = std::time::Duration::from_secs(120);

const USAGE: &str = "usage: cargo xtask eject <TOPIC> <DIR>
       cargo xtask eject --check

Writes TOPIC as a standalone Cargo project in DIR (which must not exist, or be empty):
its sources and tests as they are, versions written out, labkit and testkit beside it.
--check ejects every topic under target/eject/ and builds each offline.";

pub fn run(args: &[String]) -> Result<bool> {
    match args {
        [flag] if flag == "--check" => check_all(),
        [flag] if flag == "-h" || flag == "--help" => {
            say(USAGE);
            Ok(true)
        }
        [topic, dir] if !topic.starts_with('-') && !dir.starts_with('-') => {
            let topics = workspace::topics(&[])?;
            let Some(t) = topics.iter().find(|t| &t.name == topic) else {
                usage(&format!(
                    "no topic {topic}: one of {}",
                    topics
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let dir = PathBuf::from(dir);
            if dir.exists()
                && std::fs::read_dir(&dir)
                    .with_context(|| format!("read {}", dir.display()))?
                    .next()
                    .is_some()
            {
                usage(&format!(
                    "{} exists and is not empty: eject writes a new project",
                    dir.display()
                ));
            }
            eject(t, &dir)?;
            say(&format!(
                "Ejected {} to {} (with labkit/ and testkit/).\nBuild it: cd {} && cargo build \
                 --release && cargo run --release -- --help",
                t.name,
                dir.display(),
                dir.display()
            ));
            Ok(true)
        }
        _ => usage("eject needs a topic and a directory"),
    }
}

fn usage(why: &str) -> ! {
    eprintln!("xtask eject: {why}\n\n{USAGE}");
    std::process::exit(2);
}

/// The lab's libraries an ejected topic takes along, whole: (crate, its folder in the project).
const LIBRARIES: [&str; 2] = ["labkit", "testkit"];

/// Writes the project: the topic at its root, the lab's libraries in folders of their own.
pub fn eject(topic: &Topic, dir: &Path) -> Result<()> {
    let root = workspace::root();
    let src = root.join("crates").join(&topic.name);
    let ws = Workspace::parse(&read(&root.join("Cargo.toml"))?)?;

    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    copy_tree(&src.join("src"), &dir.join("src"))?;
    if src.join("tests").is_dir() {
        copy_tree(&src.join("tests"), &dir.join("tests"))?;
    }
    write(
        &dir.join("Cargo.toml"),
        &ws.standalone(&read(&src.join("Cargo.toml"))?, "")?,
    )?;
    for lib in LIBRARIES {
        let from = root.join("crates").join(lib);
        copy_tree(&from.join("src"), &dir.join(lib).join("src"))?;
        write(
            &dir.join(lib).join("Cargo.toml"),
            &ws.standalone(&read(&from.join("Cargo.toml"))?, "../")?,
        )?;
    }
    copy_file(&root.join("Cargo.lock"), &dir.join("Cargo.lock"))?;
    copy_file(&root.join("LICENSE"), &dir.join("LICENSE"))?;
    write(&dir.join(".gitignore"), "/target\n")?;
    let lessons: Vec<String> = std::fs::read_dir(dir.join("src"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rs") && n != "main.rs")
        .collect();
    let readme = read(&src.join("README.md")).unwrap_or_default();
    write(
        &dir.join("README.md"),
        &ejected_readme(&topic.name, &readme, &lessons),
    )?;
    Ok(())
}

/// What the root manifest gives its members: package fields, dependency specs, lints, profiles.
struct Workspace {
    package: BTreeMap<String, String>,
    deps: BTreeMap<String, String>,
    lints: String,
    profiles: String,
}

impl Workspace {
    fn parse(text: &str) -> Result<Workspace> {
        let mut package = BTreeMap::new();
        let mut deps = BTreeMap::new();
        let mut lints = String::new();
        let mut profiles = String::new();
        let mut section = String::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                section = t.to_owned();
                if let Some(rest) = t.strip_prefix("[workspace.lints.") {
                    let _ = writeln!(lints, "\n[lints.{rest}");
                } else if t.starts_with("[profile.") {
                    let _ = writeln!(profiles, "{line}");
                }
                continue;
            }
            let kv = t.split_once('=').map(|(k, v)| (k.trim(), v.trim()));
            match section.as_str() {
                "[workspace.package]" => {
                    if let Some((k, v)) = kv {
                        package.insert(k.to_owned(), v.to_owned());
                    }
                }
                "[workspace.dependencies]" => {
                    if let Some((k, v)) = kv {
                        deps.insert(k.to_owned(), v.to_owned());
                    }
                }
                s if s.starts_with("[workspace.lints.") && !t.is_empty() => {
                    let _ = writeln!(lints, "{line}");
                }
                s if s.starts_with("[profile.") => {
                    let _ = writeln!(profiles, "{line}");
                }
                _ => {}
            }
        }
        if package.is_empty() || deps.is_empty() {
            bail!("the workspace manifest has no [workspace.package] or [workspace.dependencies]");
        }
        Ok(Workspace {
            package,
            deps,
            lints,
            profiles,
        })
    }

    /// A member's manifest with everything inherited written out; the lab's libraries become
    /// path dependencies, `up` being the way from the member to the project's root (`""` for
    /// the topic itself, `"../"` for a library). The project's root manifest also gets
    /// `[workspace]` (so a parent workspace never claims it) and the lab's profiles.
    fn standalone(&self, member: &str, up: &str) -> Result<String> {
        let root = up.is_empty();
        let mut out = String::new();
        let mut section = String::new();
        for line in member.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                section = t.to_owned();
                if t == "[lints]" {
                    continue;
                }
                let _ = writeln!(out, "{line}");
                continue;
            }
            if section == "[lints]" {
                if t == "workspace = true" {
                    out.push_str(self.lints.trim_start());
                } else if !t.is_empty() {
                    bail!("unexpected line under [lints]: {line}");
                }
                continue;
            }
            let Some((key, value)) = t.split_once('=').map(|(k, v)| (k.trim(), v.trim())) else {
                let _ = writeln!(out, "{line}");
                continue;
            };
            if let Some(field) = key.strip_suffix(".workspace") {
                if section == "[package]" {
                    let v = self
                        .package
                        .get(field)
                        .with_context(|| format!("no workspace.package.{field}"))?;
                    let _ = writeln!(out, "{field} = {v}");
                } else {
                    let _ = writeln!(out, "{field} = {}", self.dep(field, "", up)?);
                }
            } else if let Some(inner) = value
                .strip_prefix('{')
                .and_then(|v| v.strip_suffix('}'))
                .filter(|v| v.contains("workspace = true"))
            {
                let extras: Vec<&str> = inner
                    .split(", ")
                    .map(str::trim)
                    .filter(|p| *p != "workspace = true" && !p.is_empty())
                    .collect();
                let _ = writeln!(out, "{key} = {}", self.dep(key, &extras.join(", "), up)?);
            } else {
                let _ = writeln!(out, "{line}");
            }
        }
        if root {
            let _ = write!(
                out,
                "\n# A project of its own, even when ejected inside another workspace.\n[workspace]\n\n{}",
                self.profiles
            );
        }
        Ok(out)
    }

    /// The spec of a workspace dependency, with a member's extra keys (`features`, `optional`).
    fn dep(&self, name: &str, extras: &str, up: &str) -> Result<String> {
        if LIBRARIES.contains(&name) {
            return Ok(if extras.is_empty() {
                format!("{{ path = \"{up}{name}\" }}")
            } else {
                format!("{{ path = \"{up}{name}\", {extras} }}")
            });
        }
        let spec = self
            .deps
            .get(name)
            .with_context(|| format!("{name} is not in [workspace.dependencies]"))?;
        if extras.is_empty() {
            return Ok(spec.clone());
        }
        if let Some(inner) = spec.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            // Features in both (tokio: the workspace's, and the member's own): their union, as
            // Cargo makes it.
            if let (Some((ours, inner)), Some((theirs, extras))) =
                (take_features(inner), take_features(extras))
            {
                let all: Vec<String> = ours.iter().chain(&theirs).cloned().collect();
                let rest: Vec<&str> = [inner.trim(), extras.trim()]
                    .into_iter()
                    .filter(|r| !r.is_empty())
                    .collect();
                let features = format!("features = [{}]", all.join(", "));
                return Ok(format!("{{ {}, {features} }}", rest.join(", ")));
            }
            if extras.contains("features") && inner.contains("features") {
                bail!("{name}: features both in the workspace and in the member");
            }
            Ok(format!("{{ {}, {extras} }}", inner.trim()))
        } else {
            Ok(format!("{{ version = {spec}, {extras} }}"))
        }
    }
}

/// Splits `features = [...]` out of a table's keys: the quoted features, and the other keys
/// (without the separating commas); `None` if there is none.
fn take_features(keys: &str) -> Option<(Vec<String>, String)> {
    // The key itself, not `default-features`.
    let start = keys
        .match_indices("features")
        .map(|(i, _)| i)
        .find(|&i| !keys[..i].ends_with(|c: char| c == '-' || c == '_' || c.is_alphanumeric()))?;
    let open = start + keys[start..].find('[')?;
    let close = open + keys[open..].find(']')?;
    let features = keys[open + 1..close]
        .split(',')
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect();
    let rest = format!("{}{}", &keys[..start], &keys[close + 1..]);
    let rest = rest.split(',').map(str::trim).filter(|k| !k.is_empty());
    Some((features, rest.collect::<Vec<_>>().join(", ")))
}

fn ejected_readme(topic: &str, readme: &str, lessons: &[String]) -> String {
    let mut lessons: Vec<String> = lessons.iter().map(|l| format!("`src/{l}`")).collect();
    lessons.sort();
    format!(
        "# `{topic}`, ejected from the processes-vs-threads lab\n\n\
         A standalone copy of the lab's `{topic}` topic, to start a program of your own from.\n\n\
         - `src/main.rs`: flags, the order of the steps, the Report: how to drive the mechanism.\n\
         - {}: the mechanism itself, plain Rust with nix/libc and no labkit types: lift these \
         alone into another program.\n\
         - `tests/`: end-to-end tests of the binary (peers killed, runs interrupted, copies at once).\n\
         - `labkit/`: the lab's run-time library, whole: flags, the Report, measurement, \
         verdicts, names, children and their guards. Replace it with your own output when you no \
         longer want the Report.\n\
         - `testkit/`: the lab's test kit (a dev-dependency): hang guards, leftovers, flag \
         fuzzing.\n\n\
         Versions are written out in `Cargo.toml`, and `Cargo.lock` pins what the lab was built \
         with, so `cargo build --offline` works wherever the lab built.\n\n\
         ```sh\ncargo run --release -- --help\ncargo run --release\ncargo test\n```\n\n\
         Links below that lead out of this folder point into the lab's repository.\n\n---\n\n{readme}",
        lessons.join(", ")
    )
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("mkdir {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            copy_file(&entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The eject test: every topic ejected and built offline, one shared target directory; then
/// each ejected binary runs `--quick` and must pass.
pub fn check_all() -> Result<bool> {
    let topics = workspace::topics(&[])?;
    let base = workspace::root().join("target").join("eject");
    let shared_target = base.join("target");
    let mut ok = true;
    for t in &topics {
        let dir = base.join(&t.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("rm -r {}", dir.display()))?;
        }
        eject(t, &dir)?;
        eprintln!("xtask eject: {} -> {}", t.name, dir.display());
        let status = workspace::cargo()
            .args(["build", "--offline", "--quiet"])
            .env("CARGO_TARGET_DIR", &shared_target)
            .current_dir(&dir)
            .status()
            .context("cargo build (ejected)")?;
        if !status.success() {
            eprintln!("xtask eject: {}: cargo build --offline FAILED", t.name);
            ok = false;
            continue;
        }
        let ejected = Topic {
            binary: shared_target.join("debug").join(&t.name),
            ..t.clone()
        };
        let run = workspace::run_topic(&ejected, &["--quick"], RUN_GUARD)?;
        if run.code != Some(0) || run.timed_out || !run.leftovers.is_empty() {
            eprintln!(
                "xtask eject: {}: the ejected binary --quick failed: exit {:?}{}{}: {}",
                t.name,
                run.code,
                if run.timed_out { ", hung" } else { "" },
                if run.leftovers.is_empty() {
                    String::new()
                } else {
                    format!(", left {}", run.leftovers.join(", "))
                },
                run.last_error_line()
            );
            ok = false;
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = r#"[workspace]
members = ["crates/*"]

[workspace.package]
version = "0.1.0"
edition = "2024"

[workspace.dependencies]
labkit = { path = "crates/labkit" }
testkit = { path = "crates/testkit" }
nix = { version = "0.30", default-features = false, features = ["process"] }
clap = { version = "4", features = ["derive"] }
proptest = { version = "1", default-features = false, features = ["std"] }
libc = "0.2"

[workspace.lints.rust]
unsafe_op_in_unsafe_fn = "deny"

[profile.dev]
opt-level = 1
"#;

    #[test]
    fn features_in_both_the_workspace_and_the_member_are_merged() {
        let keys = r#"version = "1", default-features = false, features = ["rt", "sync"]"#;
        let (ours, rest) = take_features(keys).unwrap();
        assert_eq!(ours, [r#""rt""#, r#""sync""#]);
        assert_eq!(rest, r#"version = "1", default-features = false"#);
        assert!(take_features(r#"version = "1", default-features = false"#).is_none());
    }

    #[test]
    fn a_member_manifest_is_written_out_with_no_inheritance() {
        let ws = Workspace::parse(ROOT).unwrap();
        let member = r#"[package]
name = "pipes"
version.workspace = true
edition.workspace = true

[dependencies]
labkit.workspace = true
libc.workspace = true
proptest = { workspace = true, optional = true }

[dev-dependencies]
testkit = { workspace = true, features = ["x"] }

[lints]
workspace = true
"#;
        let out = ws.standalone(member, "").unwrap();
        assert!(!out.contains("workspace = true"), "{out}");
        assert!(!out.contains(".workspace"), "{out}");
        assert!(out.contains("version = \"0.1.0\""), "{out}");
        assert!(out.contains("labkit = { path = \"labkit\" }"), "{out}");
        assert!(out.contains("testkit = { path = \"testkit\", features = [\"x\"] }"));
        let lib = ws
            .standalone("[dependencies]\nlabkit.workspace = true\n", "../")
            .unwrap();
        assert!(lib.contains("labkit = { path = \"../labkit\" }"), "{lib}");
        assert!(!lib.contains("[workspace]"), "{lib}");
        assert!(out.contains(
            "proptest = { version = \"1\", default-features = false, features = [\"std\"], optional = true }"
        ));
        assert!(
            out.contains("[lints.rust]\nunsafe_op_in_unsafe_fn = \"deny\""),
            "{out}"
        );
        assert!(out.contains("[workspace]\n"), "{out}");
        assert!(out.contains("[profile.dev]\nopt-level = 1"), "{out}");
        // A dependency the workspace does not list is an error, not a silent drop.
        assert!(
            ws.standalone("[dependencies]\nrayon.workspace = true\n", "../")
                .is_err()
        );
    }
}
