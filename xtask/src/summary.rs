//! What a bench folder holds besides the raw Reports: `summary.json`, the figures and findings of
//! every run gathered per measurement and per claim (by `gather`), with the spread across
//! runs.
//!
//! `report --from`, `compare` and the plots read only this file, so its types live here, apart
//! from the code that runs the topics.

use std::path::Path;

use anyhow::{Context, Result};
use labkit::Verdict;
use labkit::report::{Basis, Claim, Kind};
use labkit::verdict::Test;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::declared::Declared;

/// The version of `summary.json`'s shape. 2: a finding pools its runs' block figures (`test`)
/// and carries the interval, confidence and placement. 3: a third variant, `task`.
pub const SCHEMA: u32 = 3;

/// One bench: where it ran, what ran, and what came out.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub schema: u32,
    /// When the bench started (UTC), also the folder's name.
    pub created: String,
    pub runs: usize,
    pub quick: bool,
    pub host: BenchHost,
    pub jobs: Vec<Job>,
    pub figures: Vec<Figure>,
    pub findings: Vec<Finding>,
    /// `perf bench sched pipe` beside the lab's own figures, when perf is installed.
    pub reference: Vec<Reference>,
    /// What went wrong: a run with no Report, a failed check, a leftover.
    pub problems: Vec<String>,
    /// What was left out and why (a series point above a kernel limit, perf not runnable).
    #[serde(default)]
    pub notes: Vec<String>,
    /// What each topic benched declares in its `Cargo.toml`.
    #[serde(default)]
    pub topics: Vec<Declared>,
}

/// A claim as the ledger lists it: the seed's (in the seed's order), then those beyond it.
pub struct Listed<'a> {
    pub id: String,
    pub words: String,
    pub beyond_the_seed: bool,
    /// The topics that declare it, for a claim with no finding.
    pub declared_by: String,
    pub findings: Vec<&'a Finding>,
}

/// The machine, as the issue asks: CPU, allowed CPUs, kernel, compiler, THP, governor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchHost {
    pub cpu_model: String,
    pub cpus: usize,
    pub cpus_allowed: Vec<usize>,
    pub kernel: String,
    pub rustc: String,
    pub thp: String,
    pub governor: String,
}

impl Summary {
    /// Every claim of the ledger with its findings: the seed's, then the topics' own.
    pub fn listed(&self) -> Vec<Listed<'_>> {
        let declared_by = |id: &str| {
            let by: Vec<&str> = self
                .topics
                .iter()
                .filter(|t| {
                    t.claims
                        .iter()
                        .chain(t.own.iter().map(|o| &o.id))
                        .any(|c| c == id)
                })
                .map(|t| t.topic.as_str())
                .collect();
            by.join(", ")
        };
        let seed = crate::claims::CLAIMS
            .iter()
            .map(|c| (c.id.to_owned(), c.seed.to_owned(), false));
        let own = self
            .topics
            .iter()
            .flat_map(|t| &t.own)
            .map(|o| (o.id.clone(), o.statement.clone(), true));
        seed.chain(own)
            .map(|(id, words, beyond_the_seed)| Listed {
                declared_by: declared_by(&id),
                findings: self.findings.iter().filter(|f| f.id == id).collect(),
                id,
                words,
                beyond_the_seed,
            })
            .collect()
    }

    /// `NOTE …` and `PROBLEM …` lines, for the terminal.
    pub fn trouble_lines(&self) -> String {
        let notes = self.notes.iter().map(|n| format!("NOTE {n}\n"));
        let problems = self.problems.iter().map(|p| format!("PROBLEM {p}\n"));
        notes.chain(problems).collect()
    }
}

impl BenchHost {
    pub fn describe(&self) -> String {
        format!(
            "{}, {} CPUs (allowed {:?}), Linux {}, {}, THP {}, governor {}",
            self.cpu_model,
            self.cpus,
            self.cpus_allowed,
            self.kernel,
            self.rustc,
            self.thp,
            self.governor
        )
    }
}

/// One invocation of a topic binary.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub topic: String,
    /// `pipes`, or `pipes bytes=4096` for an extra point of a series.
    pub label: String,
    pub run: usize,
    pub args: Vec<String>,
    pub seconds: f64,
    pub exit_code: Option<i32>,
    /// The raw Report, relative to the bench folder, when there is one.
    pub report: Option<String>,
}

/// Median, smallest and largest of one figure over the runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    /// `None` for no finite value.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// One measurement (`name/variant/mechanism` + config of one topic) across the runs. For a
/// histogram, `figure` is the p50 and `p99` the p99; for a value, `figure` is the value.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    pub topic: String,
    pub name: String,
    pub variant: String,
    pub mechanism: String,
    pub config: Map<String, Value>,
    pub kind: Kind,
    pub unit: String,
    pub figure: Spread,
    pub p99: Option<Spread>,
    pub cpu_ns_per_op: Option<Spread>,
}

impl Figure {
    /// `topic: name/variant/mechanism config` (set keys only), unique within a bench and the
    /// same for the same measurement in another bench.
    pub fn id(&self) -> String {
        format!(
            "{}: {}/{}/{} {}",
            self.topic,
            self.name,
            self.variant,
            self.mechanism,
            labkit::report::config_text(&set_config(&self.config))
        )
        .trim_end()
        .to_owned()
    }

    /// The config value `key` as a number.
    pub fn config_f64(&self, key: &str) -> Option<f64> {
        self.config.get(key).and_then(Value::as_f64)
    }

    pub fn config_str(&self, key: &str) -> Option<&str> {
        self.config.get(key).and_then(Value::as_str)
    }
}

/// Config keys that are measured, not set (spawn records the resident size it found): they
/// vary from run to run, so they do not tell measurements apart.
pub const MEASURED_CONFIG: &[&str] = &["rss_kib", "parent_rss_kib"];

/// The config without its measured keys.
pub fn set_config(config: &Map<String, Value>) -> Map<String, Value> {
    let mut c = config.clone();
    for k in MEASURED_CONFIG {
        c.remove(*k);
    }
    c
}

/// One claim of one topic (the n-th with the same id, compares and placement) across the runs.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub id: String,
    pub topic: String,
    pub basis: Basis,
    pub compares: Vec<String>,
    /// `same` (one CPU) or `split` (two CPUs), for claims judged per placement.
    pub placement: Option<String>,
    /// Which of the topic's claims with this id, compares and placement (0 for the first).
    pub ordinal: usize,
    pub verdict: Verdict,
    /// Each counted run's own ratio (none: that run gave no ratio) and verdict.
    pub ratios: Vec<Option<f64>>,
    pub run_verdicts: Vec<Verdict>,
    /// Runs left out because a check failed in them (1-based).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<usize>,
    /// The median pair ratio over every counted run's block pairs, its interval and confidence.
    pub ratio: Option<f64>,
    pub interval: Option<[f64; 2]>,
    pub confidence: Option<f64>,
    /// The counted runs' block figures, pooled: what decided the verdict.
    pub test: Option<Test>,
    /// Measured: written from the pooled figures. Observed: the last counted run's, or why the
    /// runs gave no verdict.
    pub evidence: String,
}

impl Finding {
    /// `topic id [compares] (placement) #ordinal`, unique within a bench and stable across
    /// benches.
    pub fn id_text(&self) -> String {
        let mut s = format!("{} {}", self.topic, self.id);
        if !self.compares.is_empty() {
            s.push_str(&format!(" [{}]", self.compares.join(" vs ")));
        }
        if let Some(p) = &self.placement {
            s.push_str(&format!(" ({})", labkit::report::placement_text(p)));
        }
        if self.ordinal > 0 {
            s.push_str(&format!(" #{}", self.ordinal + 1));
        }
        s
    }

    /// Pairs compared, for a measured finding.
    pub fn pairs(&self) -> usize {
        self.test.as_ref().map_or(0, |t| t.pairs().len())
    }

    /// Where this finding's verdict and its figures disagree (see `testkit::contradictions`).
    pub fn contradictions(&self) -> Vec<String> {
        if self.basis != Basis::Measured {
            return Vec::new();
        }
        let Some(test) = &self.test else {
            // No counted run: nothing was decided, so nothing can contradict.
            return if self.verdict == Verdict::Inconclusive {
                Vec::new()
            } else {
                vec![format!("{}: a verdict with no figures", self.id_text())]
            };
        };
        let claim = Claim {
            id: self.id_text(),
            verdict: self.verdict,
            basis: self.basis,
            placement: self.placement.clone(),
            ratio: self.ratio,
            ratio_range: self.interval,
            confidence: self.confidence,
            compares: self.compares.clone(),
            test: Some(test.clone()),
            evidence: self.evidence.clone(),
        };
        testkit::contradictions(&claim)
    }
}

/// A reference figure measured by another tool in the same bench.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub tool: String,
    pub variant: String,
    /// `same` (both sides on one CPU) or `none` (placed by the scheduler).
    pub pin: String,
    pub unit: String,
    pub figure: Spread,
}

/// The rule a bench applies, in words: the same as inside a run, on the pooled block pairs.
pub fn rule_text() -> String {
    format!(
        "each measured finding pools the block pairs of every run that passed its checks; it \
         holds when the {:.0}% confidence interval of the median pair ratio (sign test) lies \
         above the margin (x{:.2} unless the topic sets its own), does not hold when it lies \
         below it (the opposite, no difference, or less than the margin), and is inconclusive \
         otherwise; a yes/no finding must be the same in every run",
        100.0 * labkit::verdict::CONFIDENCE,
        labkit::verdict::MARGIN
    )
}

/// Reads `summary.json` from a bench folder.
pub fn load(dir: &Path) -> Result<Summary> {
    let path = dir.join("summary.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let summary: Summary =
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
    anyhow::ensure!(
        summary.schema == SCHEMA,
        "{} has schema {}, this xtask reads {SCHEMA}",
        path.display(),
        summary.schema
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_median_and_ends() {
        let s = Spread::of(&[3.0, 1.0, f64::NAN, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 10.0, 4));
        assert!(Spread::of(&[]).is_none());
    }

    /// Every measured finding of a bench: its quoted figures on the side of its verdict.
    fn check_bench(dir: &Path) -> Vec<String> {
        let s = load(dir).expect("a saved bench");
        s.findings
            .iter()
            .flat_map(Finding::contradictions)
            .collect()
    }

    #[test]
    fn a_saved_bench_whose_figures_contradict_its_verdict_fails() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/contradicting-bench");
        let found = check_bench(&dir);
        assert!(
            found.iter().any(|p| p.contains("point the other way")),
            "{found:?}"
        );
    }
}
