//! From the Reports of a bench to its figures and findings: each measurement's spread over
//! the runs, and each claim judged once over the block pairs of every run that passed its
//! checks (the rule of `labkit::verdict`).

use std::collections::BTreeMap;

use labkit::report::{Basis, Claim, Kind, Measurement, Report, Status};
use labkit::{Test, Verdict};
use serde_json::Value;

use crate::summary::{Figure, Finding, MEASURED_CONFIG, Spread, set_config};

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

    type FindingKey = (String, String, Vec<String>, Option<String>, usize);
    let mut runs: BTreeMap<FindingKey, Vec<(usize, bool, &Claim)>> = BTreeMap::new();
    let mut order: Vec<FindingKey> = Vec::new();
    let mut run_of: BTreeMap<String, usize> = BTreeMap::new();
    for (_, r) in reports.iter().filter(|(main, _)| *main) {
        let run = run_of.entry(r.topic.clone()).or_default();
        *run += 1;
        let passed = r.passed();
        let mut seen: BTreeMap<(String, Vec<String>, Option<String>), usize> = BTreeMap::new();
        for c in &r.claims {
            let n = seen
                .entry((c.id.clone(), c.compares.clone(), c.placement.clone()))
                .or_default();
            let key = (
                r.topic.clone(),
                c.id.clone(),
                c.compares.clone(),
                c.placement.clone(),
                *n,
            );
            *n += 1;
            runs.entry(key.clone())
                .or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                })
                .push((*run, passed, c));
        }
    }
    let findings = order
        .into_iter()
        .map(|key| finding(&key.0, key.4, &runs[&key]))
        .collect();
    (figures, findings)
}

/// One finding from the same claim in several runs: runs with a failed check are left out;
/// the others' block figures are pooled and judged by the one rule (measured), or must agree
/// (observed).
fn finding(topic: &str, ordinal: usize, runs: &[(usize, bool, &Claim)]) -> Finding {
    let first = runs[0].2;
    let counted: Vec<&Claim> = runs.iter().filter(|r| r.1).map(|r| r.2).collect();
    let mut f = Finding {
        id: first.id.clone(),
        topic: topic.to_owned(),
        basis: first.basis,
        compares: first.compares.clone(),
        placement: first.placement.clone(),
        ordinal,
        verdict: Verdict::Inconclusive,
        ratios: counted.iter().map(|c| c.ratio).collect(),
        run_verdicts: counted.iter().map(|c| c.verdict).collect(),
        left_out: runs.iter().filter(|r| !r.1).map(|r| r.0).collect(),
        ratio: None,
        interval: None,
        confidence: None,
        test: None,
        evidence: String::new(),
    };
    if counted.is_empty() {
        f.evidence = "inconclusive: every run failed a check, so none counts".to_owned();
        return f;
    }
    if first.basis == Basis::Measured {
        match pooled(&counted) {
            Some(pooled) => {
                f.verdict = pooled.verdict;
                f.ratio = pooled.ratio;
                f.interval = pooled.ratio_range;
                f.confidence = pooled.confidence;
                f.test = pooled.test;
                f.evidence = pooled.evidence;
            }
            None => {
                f.evidence = "inconclusive: the runs compared different things (their block \
                              figures cannot be pooled)"
                    .to_owned();
            }
        }
        return f;
    }
    let last = counted[counted.len() - 1];
    if counted.iter().all(|c| c.verdict == last.verdict) {
        f.verdict = last.verdict;
        f.evidence.clone_from(&last.evidence);
    } else {
        f.evidence = format!(
            "inconclusive: the runs disagree ({}); the last run said: {}",
            f.run_verdicts
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last.evidence
        );
    }
    f
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

/// The same claim judged over `runs` pooled: `None` when one of them is not measured, or
/// their tests compare different things.
fn pooled(runs: &[&Claim]) -> Option<Claim> {
    let tests: Option<Vec<&Test>> = runs.iter().map(|c| c.test.as_ref()).collect();
    let test = pooled_test(tests?)?;
    let first = runs.first()?;
    let mut c = Claim::measured(&first.id, test, first.compares.clone());
    c.placement.clone_from(&first.placement);
    Some(c)
}

/// The same comparison over the blocks of several runs: `None` if they do not compare the
/// same things the same way (then they cannot be pooled).
fn pooled_test<'a>(tests: impl IntoIterator<Item = &'a Test>) -> Option<Test> {
    let mut it = tests.into_iter();
    let mut pooled = it.next()?.clone();
    for t in it {
        let same = t.unit == pooled.unit
            && t.better == pooled.better
            && t.margin == pooled.margin
            && t.favoured.label == pooled.favoured.label
            && t.other.label == pooled.other.label;
        if !same {
            return None;
        }
        // Pairs stay pairs: each run's blocks are cut to its own pairs before pooling.
        let n = t.favoured.blocks.len().min(t.other.blocks.len());
        pooled.favoured.blocks.truncate(pooled.other.blocks.len());
        pooled.other.blocks.truncate(pooled.favoured.blocks.len());
        pooled
            .favoured
            .blocks
            .extend_from_slice(&t.favoured.blocks[..n]);
        pooled.other.blocks.extend_from_slice(&t.other.blocks[..n]);
    }
    Some(pooled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use labkit::verdict::Test;

    fn report(topic: &str, verdict: Verdict, blocks: (&[f64], &[f64]), passed: bool) -> Report {
        let mut r = Report::new(topic);
        let test = Test::new("round trip", "ns", labkit::Better::Lower, "faster")
            .favoured("threads", blocks.0)
            .other("processes", blocks.1);
        r.claims
            .push(Claim::measured("comm.threads-faster", test, Vec::new()));
        r.claim_observed("comm.process-needs-ipc", verdict, "seen");
        r.check("nothing lost", passed, "");
        r
    }

    #[test]
    fn a_bench_pools_block_pairs_and_leaves_out_failed_runs() {
        use Verdict::*;
        // Three runs of three pairs: each alone is a 75% interval; pooled, nine pairs decide.
        let reports = vec![
            (true, report("t", Holds, (&[1.0; 3], &[2.0; 3]), true)),
            (true, report("t", Holds, (&[1.0; 3], &[2.1; 3]), true)),
            // A failed run whose figures say the opposite: left out, not pooled.
            (
                true,
                report("t", DoesNotHold, (&[9.0; 3], &[1.0; 3]), false),
            ),
            (true, report("t", Holds, (&[1.0; 3], &[1.9; 3]), true)),
        ];
        let (_, findings) = gather(&reports);
        let m = &findings[0];
        assert_eq!(m.verdict, Holds, "{m:?}");
        assert_eq!(m.left_out, vec![3]);
        assert_eq!((m.pairs(), m.run_verdicts.len()), (9, 3));
        assert!(m.confidence.unwrap() >= labkit::verdict::CONFIDENCE);
        assert!(m.evidence.contains("median of 9 pairs"), "{}", m.evidence);
        assert!(m.contradictions().is_empty(), "{:?}", m.contradictions());
        let o = &findings[1];
        assert_eq!((o.verdict, o.run_verdicts.len()), (Holds, 3));
    }

    #[test]
    fn observed_findings_must_agree_and_say_so_when_not() {
        use Verdict::*;
        let reports = vec![
            (true, report("t", Holds, (&[1.0; 3], &[2.0; 3]), true)),
            (true, report("t", DoesNotHold, (&[1.0; 3], &[2.0; 3]), true)),
        ];
        let (_, findings) = gather(&reports);
        assert_eq!(findings[1].verdict, Inconclusive);
        assert!(
            findings[1].evidence.contains("disagree"),
            "{}",
            findings[1].evidence
        );
    }

    #[test]
    fn a_finding_whose_quoted_figures_contradict_its_verdict_is_caught() {
        use Verdict::*;
        let reports = vec![(
            true,
            report("t", Holds, (&[8704.0; 6], &[12970.0; 6]), true),
        )];
        let (_, mut findings) = gather(&reports);
        assert!(findings[0].contradictions().is_empty());
        // Evidence from one run, verdict from others: the shm bug this rule replaced.
        findings[0].verdict = DoesNotHold;
        assert!(!findings[0].contradictions().is_empty());
    }

    fn latency(favoured: &[f64], other: &[f64]) -> Test {
        Test::new("round trip", "ns", labkit::Better::Lower, "faster")
            .favoured("a", favoured)
            .other("b", other)
    }

    #[test]
    fn pooling_joins_the_runs_blocks_pair_by_pair() {
        let a = latency(&[1.0, 1.0, 1.0], &[2.0, 2.0, 2.0]);
        let b = latency(&[1.0, 1.0, 1.0, 9.0], &[3.0, 3.0, 3.0]);
        let p = super::pooled_test([&a, &b]).unwrap();
        assert_eq!(p.pairs().len(), 6);
        assert_eq!(p.judge().verdict, labkit::Verdict::Holds);
        let other = Test::new("x", "MiB/s", labkit::Better::Higher, "faster");
        assert!(super::pooled_test([&a, &other]).is_none());
    }
}
