//! Cross-topic checks of documentation: every claim of the seed has a topic that declares it,
//! and every topic is documented (its README row, its README, its header naming its claims).
//! A topic's claims are what its own `Cargo.toml` declares; nothing registers it elsewhere.

use std::fs;
use std::path::{Path, PathBuf};

use crate::claims::CLAIMS;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The topic crates present in the workspace: every crate under `crates/` with a `src/main.rs`.
fn landed_topics() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root().join("crates"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("src/main.rs").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The claims a topic declares: `claims = [...]` under `[package.metadata.lab]` in its
/// `Cargo.toml` (read as text: one line, quoted ids).
fn declared_claims(topic: &str) -> Vec<String> {
    let manifest =
        fs::read_to_string(root().join("crates").join(topic).join("Cargo.toml")).unwrap();
    // A topic with only claims of its own (`own-claims`) declares none of the seed's.
    manifest
        .lines()
        .skip_while(|l| l.trim() != "[package.metadata.lab]")
        .find(|l| l.trim_start().starts_with("claims"))
        .map(|line| {
            line.split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_claim_of_the_seed_is_declared_by_some_topic() {
    let declared: Vec<(String, Vec<String>)> = landed_topics()
        .into_iter()
        .map(|t| {
            let claims = declared_claims(&t);
            (t, claims)
        })
        .collect();
    for claim in CLAIMS {
        assert!(
            declared
                .iter()
                .any(|(_, c)| c.iter().any(|id| id == claim.id)),
            "no topic declares {}",
            claim.id
        );
    }
    for (topic, claims) in &declared {
        let manifest =
            fs::read_to_string(root().join("crates").join(topic).join("Cargo.toml")).unwrap();
        assert!(
            !claims.is_empty() || manifest.contains("own-claims"),
            "topic {topic} declares no claim"
        );
    }
}

#[test]
fn every_landed_topic_is_in_the_table_and_documented() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let topics = landed_topics();
    assert!(topics.contains(&"pipes".to_owned()), "found {topics:?}");
    for name in &topics {
        let row = format!("| [`{name}`](crates/{name}/README.md) |");
        assert!(
            readme.contains(&row),
            "README.md has no topic-table row starting {row}"
        );
        let crate_readme = root().join("crates").join(name).join("README.md");
        let text = fs::read_to_string(&crate_readme)
            .unwrap_or_else(|_| panic!("{} is missing", crate_readme.display()));
        assert!(
            text.contains("## Run it"),
            "{} says nothing about running it",
            crate_readme.display()
        );
        assert!(
            root()
                .join("crates")
                .join(name)
                .join("tests/cli.rs")
                .exists(),
            "{name} has no tests/cli.rs"
        );
    }
}

#[test]
fn every_landed_topic_names_its_claims_in_its_header() {
    for name in landed_topics() {
        let main =
            fs::read_to_string(root().join("crates").join(&name).join("src/main.rs")).unwrap();
        let header: String = main
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        for section in ["**Claim", "**Steps**", "**Run it**"] {
            assert!(
                header.contains(section),
                "{name}'s //! header lacks {section}"
            );
        }
        for claim in declared_claims(&name) {
            assert!(
                header.contains(&claim),
                "{name}'s header does not name {claim}"
            );
        }
    }
}
