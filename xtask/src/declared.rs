//! What a topic declares in its `Cargo.toml` (`[package.metadata.lab]`), as `workspace` reads
//! it from `cargo metadata` and `summary.json` keeps it: the seed's claims it gives evidence
//! for, and claims of its own.

use serde::{Deserialize, Serialize};

/// What a topic declares in its `Cargo.toml` (`[package.metadata.lab]`): the seed's claims it
/// gives evidence for, and claims of its own beyond the seed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declared {
    pub topic: String,
    pub claims: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own: Vec<OwnClaim>,
}

/// A claim a topic makes beyond the seed, with its statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnClaim {
    pub id: String,
    pub statement: String,
}
