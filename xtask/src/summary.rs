//! What a bench folder holds besides the raw Reports: `summary.json`, the figures and findings of
//! every run gathered per measurement and per claim, with the spread across runs.
//!
//! `report --from`, `compare` and the plots read only this file, so its types live here, apart
//! from the code that runs the topics.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use labkit::Verdict;
use labkit::report::{Basis, Kind, Measurement, Report, Status};
use labkit::verdict::Comparison;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The version of `summary.json`'s shape.
pub const SCHEMA: u32 = 1;

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<Spread>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// One claim of one topic (the n-th with the same id and compares) across the runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub id: String,
    pub topic: String,
    pub basis: Basis,
    pub compares: Vec<String>,
    /// Which of the topic's claims with this id and compares (0 for the first).
    pub ordinal: usize,
    pub verdict: Verdict,
    /// Each run's own ratio (none: that run gave no ratio) and verdict.
    pub ratios: Vec<Option<f64>>,
    pub run_verdicts: Vec<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Spread>,
    /// The evidence sentence of the last run.
    pub evidence: String,
}

impl Finding {
    /// `topic id [compares] #ordinal`, unique within a bench and stable across benches.
    pub fn id_text(&self) -> String {
        let mut s = format!("{} {}", self.topic, self.id);
        if !self.compares.is_empty() {
            s.push_str(&format!(" [{}]", self.compares.join(" vs ")));
        }
        if self.ordinal > 0 {
            s.push_str(&format!(" #{}", self.ordinal + 1));
        }
        s
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

/// The verdict across runs. With three runs or more, the ratio of each run decides, as the
/// block pairs do inside a run: holds when every run's ratio lies above `1 + MARGIN`, does not
/// hold when every one lies below `1 / (1 + MARGIN)`, else inconclusive. With fewer runs
/// (too few to be a spread), the runs' own verdicts must all agree. Observed claims: every
/// run's verdict must agree. A measured claim with a run that gave no ratio: the runs'
/// verdicts must agree too.
pub fn verdict_across(basis: Basis, ratios: &[Option<f64>], verdicts: &[Verdict]) -> Verdict {
    let agreed = match verdicts.split_first() {
        Some((first, rest)) if rest.iter().all(|v| v == first) => *first,
        _ => Verdict::Inconclusive,
    };
    let every: Option<Vec<f64>> = ratios.iter().copied().collect();
    match every {
        Some(r) if basis == Basis::Measured && r.len() >= labkit::verdict::MIN_PAIRS => {
            Comparison::from_ratios(r).verdict
        }
        _ => agreed,
    }
}

/// The rule [`verdict_across`] applies for a bench of `runs`, in words.
pub fn rule_text(runs: usize) -> &'static str {
    if runs >= labkit::verdict::MIN_PAIRS {
        "a verdict across runs holds only when every run's ratio lies more than 3% beyond 1 on \
         the claimed side (does not hold: every run on the other side; else inconclusive)"
    } else {
        "with fewer than 3 runs there is no spread to judge: a verdict across runs is the runs' \
         own verdict when they all agree, else inconclusive"
    }
}

/// Config keys that are measured, not set (spawn records the resident size it found): they
/// vary from run to run, so they do not tell measurements apart.
const MEASURED_CONFIG: &[&str] = &["rss_kib", "parent_rss_kib"];

/// The config without its measured keys.
fn set_config(config: &Map<String, Value>) -> Map<String, Value> {
    let mut c = config.clone();
    for k in MEASURED_CONFIG {
        c.remove(*k);
    }
    c
}

/// Gathers the figures of every Report (in run order) per measurement, and the claims of the
/// main runs per finding. `main` tells which Reports are a topic's own run at its sizes (their
/// claims count); the others are extra points of a series and give figures only.
pub fn gather(reports: &[(bool, Report)]) -> (Vec<Figure>, Vec<Finding>) {
    type FigureKey = (String, String, String, String, String);
    let mut figures: BTreeMap<FigureKey, (Measurement, Vec<&Measurement>)> = BTreeMap::new();
    let mut order: Vec<FigureKey> = Vec::new();
    for (_, r) in reports {
        for m in &r.measurements {
            let key = (
                r.topic.clone(),
                m.name.clone(),
                m.variant.as_str().to_owned(),
                m.mechanism.clone(),
                Value::Object(set_config(&m.config)).to_string(),
            );
            let entry = figures.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                (m.clone(), Vec::new())
            });
            entry.1.push(m);
        }
    }
    let figures = order
        .iter()
        .filter_map(|key| {
            let (first, all) = &figures[key];
            let main_figure: Vec<f64> = all
                .iter()
                .filter_map(|m| match m.kind {
                    Kind::Histogram => m.p50.map(|v| v as f64),
                    Kind::Value => m.value,
                })
                .collect();
            let p99: Vec<f64> = all.iter().filter_map(|m| m.p99.map(|v| v as f64)).collect();
            let cpu: Vec<f64> = all.iter().filter_map(|m| m.cpu_ns_per_op).collect();
            // A measured config value (a resident size) varies from run to run: its median.
            let mut config = first.config.clone();
            for k in MEASURED_CONFIG {
                let values: Vec<f64> = all
                    .iter()
                    .filter_map(|m| m.config.get(*k).and_then(Value::as_f64))
                    .collect();
                if let Some(v) = Spread::of(&values) {
                    config.insert((*k).to_owned(), Value::from(v.median.round() as u64));
                }
            }
            Some(Figure {
                topic: key.0.clone(),
                name: first.name.clone(),
                variant: key.2.clone(),
                mechanism: first.mechanism.clone(),
                config,
                kind: first.kind,
                unit: first.unit.clone(),
                figure: Spread::of(&main_figure)?,
                p99: Spread::of(&p99),
                cpu_ns_per_op: Spread::of(&cpu),
            })
        })
        .collect();

    type FindingKey = (String, String, Vec<String>, usize);
    let mut findings: BTreeMap<FindingKey, Finding> = BTreeMap::new();
    let mut order: Vec<FindingKey> = Vec::new();
    for (_, r) in reports.iter().filter(|(main, _)| *main) {
        let mut seen: BTreeMap<(String, Vec<String>), usize> = BTreeMap::new();
        for c in &r.claims {
            let n = seen.entry((c.id.clone(), c.compares.clone())).or_default();
            let key = (r.topic.clone(), c.id.clone(), c.compares.clone(), *n);
            *n += 1;
            let f = findings.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                Finding {
                    id: c.id.clone(),
                    topic: r.topic.clone(),
                    basis: c.basis,
                    compares: c.compares.clone(),
                    ordinal: key.3,
                    verdict: Verdict::Inconclusive,
                    ratios: Vec::new(),
                    run_verdicts: Vec::new(),
                    ratio: None,
                    evidence: String::new(),
                }
            });
            f.ratios.push(c.ratio);
            f.run_verdicts.push(c.verdict);
            f.evidence.clone_from(&c.evidence);
        }
    }
    let findings = order
        .into_iter()
        .map(|key| {
            let mut f = findings.remove(&key).expect("every key was inserted");
            f.verdict = verdict_across(f.basis, &f.ratios, &f.run_verdicts);
            f.ratio = Spread::of(&f.ratios.iter().flatten().copied().collect::<Vec<_>>());
            f
        })
        .collect();
    (figures, findings)
}

/// Failed checks of a Report, as problems.
pub fn failed_checks(label: &str, run: usize, report: &Report) -> Vec<String> {
    report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| format!("{label} run {run}: check failed: {}: {}", c.name, c.detail))
        .collect()
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

    #[test]
    fn verdict_across_runs_needs_every_run_on_one_side() {
        use Verdict::*;
        let m = Basis::Measured;
        let r = |v: &[f64]| v.iter().map(|x| Some(*x)).collect::<Vec<_>>();
        assert_eq!(verdict_across(m, &r(&[1.5, 2.0, 1.2]), &[Holds; 3]), Holds);
        // A run's own verdict may be inconclusive: across runs, its ratio counts.
        assert_eq!(
            verdict_across(m, &r(&[1.5, 2.0, 1.2]), &[Holds, Inconclusive, Holds]),
            Holds
        );
        assert_eq!(
            verdict_across(m, &r(&[1.5, 0.9, 1.2]), &[Holds; 3]),
            Inconclusive
        );
        assert_eq!(
            verdict_across(m, &r(&[0.5, 0.8, 0.9]), &[DoesNotHold; 3]),
            DoesNotHold
        );
        // Within the margin is not a side.
        assert_eq!(
            verdict_across(m, &r(&[1.01, 1.5, 2.0]), &[Holds; 3]),
            Inconclusive
        );
        // Fewer than three runs: the runs' verdicts must agree.
        assert_eq!(verdict_across(m, &r(&[1.5]), &[Holds]), Holds);
        assert_eq!(
            verdict_across(m, &r(&[1.5, 1.6]), &[Holds, Inconclusive]),
            Inconclusive
        );
        // A run without a ratio cannot be outvoted by the others' ratios.
        let gap = [Some(1.5), None, Some(1.4), Some(1.6)];
        assert_eq!(
            verdict_across(m, &gap, &[Holds, Inconclusive, Holds, Holds]),
            Inconclusive
        );
        let o = Basis::Observed;
        assert_eq!(verdict_across(o, &[None, None], &[Holds, Holds]), Holds);
        assert_eq!(
            verdict_across(o, &[None, None], &[Holds, DoesNotHold]),
            Inconclusive
        );
    }
}
