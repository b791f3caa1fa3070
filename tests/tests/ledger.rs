//! Cross-topic checks: the claims table is complete, and every topic is documented.

use std::fs;
use std::path::{Path, PathBuf};

use labkit::claims::{CLAIMS, TOPICS};

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

#[test]
fn every_claim_of_the_seed_is_named_by_some_topic() {
    for claim in CLAIMS {
        assert!(!claim.topics.is_empty(), "{} has no topic", claim.id);
        for t in claim.topics {
            assert!(
                TOPICS.iter().any(|info| info.name == *t),
                "{} names unknown topic {t}",
                claim.id
            );
        }
    }
    // And every planned topic gives evidence for something.
    for t in TOPICS {
        assert!(
            CLAIMS.iter().any(|c| c.topics.contains(&t.name)),
            "topic {} has no claim",
            t.name
        );
    }
}

#[test]
fn every_landed_topic_is_in_the_table_and_documented() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let topics = landed_topics();
    assert!(topics.contains(&"pipes".to_owned()), "found {topics:?}");
    for name in &topics {
        assert!(
            TOPICS.iter().any(|t| t.name == *name),
            "{name} is not in labkit::claims::TOPICS"
        );
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
        for claim in CLAIMS.iter().filter(|c| c.topics.contains(&name.as_str())) {
            assert!(
                header.contains(claim.id),
                "{name}'s header does not name {}",
                claim.id
            );
        }
    }
}
